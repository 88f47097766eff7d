"""How both faces show results: plain-text tables and byte sizes (`text`), the schema
overview report (`stats`) and its charts (`plots`). Nothing here reads a database: each
function turns values the front door returned into text or a figure."""
