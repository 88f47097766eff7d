"""The catalog queries of `catalog`, one SQL text per DataFrame (and one for the summary).

Kept apart from the functions that run them, which document the columns: here is what the
server computes, and why each query is written the way it is (set-wise, one round trip,
estimates kept below the JIT threshold).
"""

# The schema parameter is bound (%(schema)s), never formatted into the text; the catalog
# lookups use the OID (`::regnamespace`), resolved once per query. The name is quoted
# first (quote_ident): regnamespace reads its input as SQL, so a bare 'Reports' would be
# folded to reports and a name holding a quote would be a syntax error.

# Relations that count as "tables": ordinary and partitioned, partitions excluded.
_TABLES = (
    "c.relnamespace = quote_ident(%(schema)s)::regnamespace"
    " AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
)

# pg_total_relation_size is by definition pg_table_size + pg_indexes_size: computing the two
# once (OFFSET 0 keeps the planner from inlining, hence re-evaluating, them) halves the file
# system calls, which are most of the cost on thousands of tables. Partitions are found by
# walking pg_inherits (set-wise; pg_partition_tree() per table would make the planner
# expect 1,000 rows per table, and a server with JIT compile the query for a second).
TABLES_SQL = f"""
WITH RECURSIVE tree AS (
    SELECT c.oid AS root, c.oid AS relid, c.relkind FROM pg_class c WHERE {_TABLES} AND c.relkind = 'p'
    UNION ALL
    SELECT tree.root, p.oid, p.relkind
    FROM tree JOIN pg_inherits i ON i.inhparent = tree.relid JOIN pg_class p ON p.oid = i.inhrelid
),
part AS (
    SELECT root, count(*) AS partitions,
           sum(p.reltuples) FILTER (WHERE p.reltuples >= 0)::float8 AS rows,
           sum(pg_table_size(tree.relid))::bigint AS table_bytes,
           sum(pg_indexes_size(tree.relid))::bigint AS index_bytes
    FROM tree JOIN pg_class p ON p.oid = tree.relid
    WHERE tree.relkind <> 'p'  -- the leaves hold the data
    GROUP BY root
)
SELECT c.relname AS "table",
       CASE WHEN c.relkind = 'p' THEN part.rows
            WHEN c.reltuples >= 0 THEN c.reltuples::float8 END AS estimated_rows,
       size.table_bytes, size.index_bytes, size.table_bytes + size.index_bytes AS total_bytes,
       EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = c.oid AND x.indisprimary) AS has_primary_key,
       c.relrowsecurity AS rls_enabled,
       c.relforcerowsecurity AS rls_forced,
       c.relkind = 'p' AS partitioned,
       coalesce(part.partitions, 0) AS partitions
FROM pg_class c
LEFT JOIN part ON part.root = c.oid
CROSS JOIN LATERAL (
    SELECT CASE WHEN c.relkind = 'p' THEN coalesce(part.table_bytes, 0) ELSE pg_table_size(c.oid) END
               AS table_bytes,
           CASE WHEN c.relkind = 'p' THEN coalesce(part.index_bytes, 0) ELSE pg_indexes_size(c.oid) END
               AS index_bytes
    OFFSET 0
) size
WHERE {_TABLES}
ORDER BY 1
"""

COLUMNS_SQL = f"""
SELECT c.relname AS "table", a.attname AS "column", a.attnum::int AS position,
       format_type(a.atttypid, a.atttypmod) AS type,
       NOT a.attnotnull AS nullable,
       CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END AS "default",
       CASE a.attidentity WHEN 'a' THEN 'always' WHEN 'd' THEN 'by default' END AS identity,
       CASE WHEN a.attgenerated <> '' THEN pg_get_expr(d.adbin, d.adrelid) END AS generated
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE {_TABLES} AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY 1, 3
"""

# One row per index of the schema's relations (partitions' indexes included: they hold the
# data and the scan counts). `keys` is one text per key column, column number or expression,
# with its operator class and collation, so that two indexes can be compared key by key.
# Everything is joined set-wise so that the planner's row estimates stay close to the truth:
# a misestimate made it choose nested loops (PostgreSQL 15: 17 s on 15,000 indexes) or, on a
# server with JIT, compile the query for a second.
INDEXES_SQL = """
WITH ix AS MATERIALIZED (
    SELECT i.oid, i.relname AS index, t.relname AS tbl, x.indrelid, i.relam, i.relkind,
           x.indisunique, x.indisprimary, x.indisvalid,
           x.indkey::text AS indkey, x.indclass::text AS indclass,
           x.indcollation::text AS indcollation, x.indoption::text AS indoption,
           coalesce(pg_get_expr(x.indexprs, x.indrelid), '') AS exprs,
           pg_get_expr(x.indpred, x.indrelid) AS pred,
           i.relam = btree.oid AND NOT x.indisunique AND x.indnatts = x.indnkeyatts AS may_be_prefix,
           i.relam = btree.oid AND x.indisvalid AS may_extend,
           con.conindid IS NOT NULL AS backs_constraint,
           ARRAY(SELECT CASE WHEN k.attnum <> 0 THEN k.attnum::text
                             ELSE pg_get_indexdef(i.oid, k.n::int, false) END
                        || ' ' || (x.indclass::oid[])[k.n - 1] || ' ' || (x.indcollation::oid[])[k.n - 1]
                 FROM unnest(x.indkey::int2[]) WITH ORDINALITY k(attnum, n)
                 WHERE k.n <= x.indnkeyatts ORDER BY k.n) AS keys
    FROM pg_index x
    JOIN pg_class i ON i.oid = x.indexrelid
    JOIN pg_class t ON t.oid = x.indrelid
    CROSS JOIN (SELECT oid FROM pg_am WHERE amname = 'btree') btree
    LEFT JOIN pg_constraint con  -- the primary key, unique or exclusion constraint it enforces
           ON con.conindid = x.indexrelid AND con.conrelid = x.indrelid AND con.contype IN ('p', 'u', 'x')
    WHERE t.relnamespace = quote_ident(%(schema)s)::regnamespace
),
prefix AS (
    -- A plain btree index whose key columns are a strict left prefix of another valid btree
    -- index's, with the same predicate: the longer index serves the same searches. The
    -- conditions on each side are precomputed booleans: filters on a CTE's columns get
    -- default estimates (1/200 for an equality), which made PostgreSQL 15 expect a few rows.
    SELECT DISTINCT ON (a.oid) a.oid, b.index AS redundant_prefix_of
    FROM ix a
    JOIN ix b ON b.indrelid = a.indrelid AND b.oid <> a.oid
    WHERE a.may_be_prefix AND b.may_extend
      AND cardinality(b.keys) > cardinality(a.keys)
      AND b.keys[1:cardinality(a.keys)] = a.keys
      AND a.pred IS NOT DISTINCT FROM b.pred
    ORDER BY a.oid, cardinality(b.keys), b.index
)
SELECT ix.tbl AS "table", ix.index, pg_get_indexdef(ix.oid) AS definition,
       pg_relation_size(ix.oid) AS bytes,
       coalesce(pg_stat_get_numscans(ix.oid), 0) AS scans,
       ix.indisunique AS "unique", ix.indisprimary AS "primary", ix.indisvalid AS valid,
       (coalesce(pg_stat_get_numscans(ix.oid), 0) = 0 AND NOT ix.indisunique
        AND NOT ix.backs_constraint AND ix.relkind <> 'I') AS unused,
       -- Duplicates: same table, method, key and INCLUDE columns, operator classes,
       -- collations, orderings, expressions and predicate. The one to keep comes first:
       -- primary key, then a constraint's index, then unique, then valid, then the oldest
       -- (lowest OID); the others duplicate it.
       CASE WHEN row_number() OVER w > 1 THEN first_value(ix.index) OVER w END AS duplicate_of,
       prefix.redundant_prefix_of,
       (SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()) AS stats_reset
FROM ix
LEFT JOIN prefix ON prefix.oid = ix.oid
WINDOW w AS (PARTITION BY ix.indrelid, ix.relam, ix.indkey, ix.indclass, ix.indcollation, ix.indoption,
                          ix.exprs, coalesce(ix.pred, '')
             ORDER BY ix.indisprimary DESC, ix.backs_constraint DESC, ix.indisunique DESC,
                      ix.indisvalid DESC, ix.oid)
ORDER BY 1, 2
"""

CONSTRAINTS_SQL = f"""
SELECT c.relname AS "table", k.conname AS name,
       CASE k.contype WHEN 'p' THEN 'primary key' WHEN 'u' THEN 'unique' WHEN 'f' THEN 'foreign key'
                      WHEN 'c' THEN 'check' WHEN 'x' THEN 'exclusion' WHEN 't' THEN 'trigger'
                      ELSE k.contype::text END AS type,
       pg_get_constraintdef(k.oid) AS definition,
       k.convalidated AS validated
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
WHERE {_TABLES}
  AND k.contype <> 'n'  -- PostgreSQL 18 lists NOT NULL here too: columns(...).nullable has it
ORDER BY 1, 2
"""

# An FK is covered when its columns are, in any order, the leading key columns of a valid
# index usable by the lookup the server runs on every DELETE or key UPDATE of a referenced
# row (`WHERE fk_col = $1 [AND ...]`): a partial index qualifies only when its predicate just
# says FK columns are NOT NULL, which that equality implies. The predicate is read from its
# deparsed text: `(col IS NOT NULL)` atoms joined by AND, nothing else.
_NOT_NULL_ATOM = r"""\(("(?:[^"]|"")+"|[^\s()"]+) IS NOT NULL\)"""
FK_WITHOUT_INDEX_SQL = rf"""
WITH fk AS MATERIALIZED (
    SELECT k.oid, c.relname AS tbl, k.conname, k.conrelid, k.conkey, k.confrelid,
           ARRAY(SELECT quote_ident(a.attname)
                 FROM unnest(k.conkey) WITH ORDINALITY u(attnum, n)
                 JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum
                 ORDER BY u.n) AS cols
    FROM pg_constraint k
    JOIN pg_class c ON c.oid = k.conrelid
    WHERE {_TABLES} AND k.contype = 'f'
),
candidate AS (
    SELECT fk.oid AS fk, i.relname::text AS index, x.indkey::int2[] AS keys,
           x.indnkeyatts >= cardinality(fk.conkey)
             AND (x.indkey::int2[])[0:cardinality(fk.conkey) - 1] @> fk.conkey
             AND (x.indkey::int2[])[0:cardinality(fk.conkey) - 1] <@ fk.conkey AS covers,
           (x.indkey::int2[])[0] = fk.conkey[1] AS leads_with_first
    FROM fk
    JOIN pg_index x ON x.indrelid = fk.conrelid
    JOIN pg_class i ON i.oid = x.indexrelid
    CROSS JOIN LATERAL (SELECT pg_get_expr(x.indpred, x.indrelid) AS pred) p
    WHERE x.indisvalid AND (x.indkey::int2[])[0] = ANY (fk.conkey)
      AND (p.pred IS NULL
           OR (regexp_replace(p.pred, '{_NOT_NULL_ATOM}|\sAND\s', '', 'g') ~ '^[\s()]*$'
               AND NOT EXISTS (SELECT 1 FROM regexp_matches(p.pred, '{_NOT_NULL_ATOM}', 'g') m
                               WHERE m[1] <> ALL (fk.cols))))
),
best AS (
    SELECT fk, bool_or(covers) AS covered,
           (array_agg(index ORDER BY leads_with_first DESC, index))[1] AS partly_covered_by
    FROM candidate
    GROUP BY fk
)
SELECT fk.tbl AS "table", fk.conname AS "constraint", array_to_string(fk.cols, ', ') AS columns,
       fk.confrelid::regclass::text AS referenced_table, best.partly_covered_by
FROM fk
LEFT JOIN best ON best.fk = fk.oid
WHERE NOT coalesce(best.covered, false)
ORDER BY 1, 2
"""

_COMMANDS = "ARRAY['r', 'a', 'w', 'd', '*']"
_COMMAND_WORDS = "ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'ALL']"
_COMMAND_WORD = (
    "CASE {} WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'"
    " WHEN 'd' THEN 'DELETE' WHEN '*' THEN 'ALL' END"
)
_ROLE_NAME = "CASE WHEN {0} = 0 THEN 'public' ELSE pg_get_userbyid({0}) END"

RLS_SQL = f"""
WITH pol AS (
    SELECT p.polrelid,
           count(DISTINCT p.oid) AS policies,
           array_agg(DISTINCT p.polcmd::text) AS cmds,
           string_agg(DISTINCT {_ROLE_NAME.format("r.role")}, ', '
                      ORDER BY {_ROLE_NAME.format("r.role")}) AS roles
    FROM pg_policy p CROSS JOIN LATERAL unnest(p.polroles) r(role)
    GROUP BY p.polrelid
)
SELECT c.relname AS "table", c.relrowsecurity AS rls_enabled, c.relforcerowsecurity AS rls_forced,
       coalesce(pol.policies, 0) AS policies,
       array_to_string(ARRAY(SELECT m.word FROM unnest({_COMMANDS}, {_COMMAND_WORDS})
                                                WITH ORDINALITY m(cmd, word, n)
                             WHERE m.cmd = ANY (pol.cmds) ORDER BY m.n), ', ') AS commands,
       pol.roles,
       c.relrowsecurity AND pol.polrelid IS NULL AS enabled_without_policy,
       NOT c.relrowsecurity AND pol.polrelid IS NOT NULL AS policies_without_rls
FROM pg_class c
LEFT JOIN pol ON pol.polrelid = c.oid
WHERE {_TABLES}
ORDER BY 1
"""

POLICIES_SQL = f"""
SELECT c.relname AS "table", p.polname AS policy, p.polpermissive AS permissive,
       {_COMMAND_WORD.format("p.polcmd")} AS command,
       array_to_string(ARRAY(SELECT {_ROLE_NAME.format("r.role")}
                             FROM unnest(p.polroles) r(role) ORDER BY 1), ', ') AS roles,
       pg_get_expr(p.polqual, p.polrelid) AS using,
       pg_get_expr(p.polwithcheck, p.polrelid) AS with_check
FROM pg_policy p
JOIN pg_class c ON c.oid = p.polrelid
WHERE c.relnamespace = quote_ident(%(schema)s)::regnamespace
ORDER BY 1, 2
"""

TRIGGERS_SQL = """
SELECT c.relname AS "table", t.tgname AS trigger, pg_get_triggerdef(t.oid) AS definition,
       CASE t.tgenabled WHEN 'O' THEN 'enabled' WHEN 'D' THEN 'disabled' WHEN 'R' THEN 'replica'
                        WHEN 'A' THEN 'always' END AS enabled,
       t.tgfoid::regprocedure::text AS function
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
WHERE c.relnamespace = quote_ident(%(schema)s)::regnamespace AND NOT c.relispartition AND NOT t.tgisinternal
ORDER BY 1, 2
"""

FUNCTIONS_SQL = """
SELECT p.oid::regprocedure::text AS name,
       CASE p.prokind WHEN 'f' THEN 'function' WHEN 'p' THEN 'procedure' WHEN 'w' THEN 'window' END AS kind,
       l.lanname AS language,
       p.prosecdef AS security_definer,
       cfg.search_path,
       cfg.search_path IS NOT NULL AS search_path_pinned,
       CASE p.provolatile WHEN 'i' THEN 'immutable' WHEN 's' THEN 'stable' WHEN 'v' THEN 'volatile' END
           AS volatility,
       pg_get_function_result(p.oid) AS returns,
       pg_get_userbyid(p.proowner) AS owner,
       e.extname AS extension,
       p.prosecdef AND cfg.search_path IS NULL AS definer_without_search_path
FROM pg_proc p
JOIN pg_language l ON l.oid = p.prolang
LEFT JOIN LATERAL (
    SELECT substr(s, length('search_path=') + 1) AS search_path
    FROM unnest(p.proconfig) s WHERE s LIKE 'search_path=%%' LIMIT 1
) cfg ON true
LEFT JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
LEFT JOIN pg_extension e ON e.oid = d.refobjid
WHERE p.pronamespace = quote_ident(%(schema)s)::regnamespace AND p.prokind IN ('f', 'p', 'w')
ORDER BY 1
"""

# The usable range of a sequence is also bounded by the column it feeds: a bigint sequence
# owned by an integer column fails at 2^31 - 1, not at its own maximum.
SEQUENCES_SQL = """
WITH s AS (
    SELECT c.relname AS name, format_type(s.seqtypid, NULL) AS data_type,
           s.seqincrement AS increment, s.seqcycle AS cycle,
           s.seqmax AS max_value,
           least(s.seqmax, CASE a.atttypid WHEN 'int2'::regtype THEN 32767
                                           WHEN 'int4'::regtype THEN 2147483647 END) AS hi,
           greatest(s.seqmin, CASE a.atttypid WHEN 'int2'::regtype THEN -32768
                                              WHEN 'int4'::regtype THEN -2147483648 END) AS lo,
           quote_ident(t.relname) || '.' || quote_ident(a.attname) AS owned_by,
           v.readable,
           CASE WHEN v.readable AND %(read)s THEN pg_sequence_last_value(c.oid) END AS last_value
    FROM pg_sequence s
    JOIN pg_class c ON c.oid = s.seqrelid
    CROSS JOIN LATERAL (SELECT has_sequence_privilege(c.oid, 'SELECT,USAGE') AS readable) v
    LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
                         AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
    LEFT JOIN pg_class t ON t.oid = d.refobjid
    LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
    WHERE c.relnamespace = quote_ident(%(schema)s)::regnamespace
)
SELECT name, data_type, last_value, max_value, increment, cycle, owned_by,
       CASE WHEN increment > 0 THEN hi ELSE lo END AS limit_value,
       used_fraction, used_fraction > %(threshold)s AS close_to_max
FROM (
    SELECT s.*,
           (CASE WHEN NOT readable OR NOT %(read)s THEN NULL
                 WHEN last_value IS NULL THEN 0
                 WHEN hi = lo THEN 1
                 WHEN increment > 0 THEN (last_value::numeric - lo) / (hi::numeric - lo)
                 ELSE (hi::numeric - last_value) / (hi::numeric - lo) END)::float8 AS used_fraction
    FROM s
) f
ORDER BY 1
"""

EXTENSIONS_SQL = """
SELECT e.extname AS name, e.extversion AS version, e.extnamespace::regnamespace::text AS schema
FROM pg_extension e
ORDER BY 1
"""

SUMMARY_SQL = f"""
SELECT
  (SELECT count(*) FROM pg_class c WHERE {_TABLES}) AS tables,
  (SELECT count(*) FROM pg_class c WHERE {_TABLES}
     AND NOT EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = c.oid AND x.indisprimary))
     AS tables_without_primary_key,
  (SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c
     WHERE c.relnamespace = quote_ident(%(schema)s)::regnamespace AND c.relkind IN ('r', 'm')) AS total_bytes,
  (SELECT count(*) FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
     WHERE c.relnamespace = quote_ident(%(schema)s)::regnamespace) AS indexes,
  (SELECT count(*) FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
     WHERE c.relnamespace = quote_ident(%(schema)s)::regnamespace AND NOT x.indisvalid) AS invalid_indexes,
  (SELECT count(*) FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
     WHERE {_TABLES} AND k.contype <> 'n' AND NOT k.convalidated) AS constraints_not_validated,
  (SELECT count(*) FROM ({FK_WITHOUT_INDEX_SQL}) f) AS foreign_keys_without_index,
  (SELECT count(*) FROM pg_class c WHERE {_TABLES} AND c.relrowsecurity) AS rls_tables,
  (SELECT count(*) FROM pg_class c WHERE {_TABLES} AND c.relrowsecurity
     AND NOT EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid)) AS rls_without_policy,
  (SELECT count(*) FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
     WHERE c.relnamespace = quote_ident(%(schema)s)::regnamespace) AS policies,
  (SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
     WHERE c.relnamespace = quote_ident(%(schema)s)::regnamespace
       AND NOT c.relispartition AND NOT t.tgisinternal) AS triggers,
  (SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
     WHERE c.relnamespace = quote_ident(%(schema)s)::regnamespace
       AND NOT c.relispartition AND NOT t.tgisinternal AND t.tgenabled = 'D') AS disabled_triggers,
  (SELECT count(*) FROM pg_proc p
     WHERE p.pronamespace = quote_ident(%(schema)s)::regnamespace
       AND p.prokind IN ('f', 'p', 'w')) AS functions,
  (SELECT count(*) FROM pg_proc p
     WHERE p.pronamespace = quote_ident(%(schema)s)::regnamespace
       AND p.prokind IN ('f', 'p', 'w') AND p.prosecdef
       AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) s WHERE s LIKE 'search_path=%%'))
     AS definer_without_search_path,
  (SELECT count(*) FROM pg_class c
     WHERE c.relnamespace = quote_ident(%(schema)s)::regnamespace AND c.relkind = 'S') AS sequences,
  (SELECT count(*) FROM pg_extension) AS extensions
"""
