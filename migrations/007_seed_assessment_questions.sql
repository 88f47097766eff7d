-- Migration 007: seed assessment questions (values and interests questionnaires)
--
-- The guide describes 007 as "seed assessment questions" creating no table, yet
-- assessment_questions is only created by 018: seeding it here would use a
-- table from a later migration. The guide also lists values_questions and
-- interests_questions (Tests category) without assigning them to any
-- migration. Resolution: 007 creates those two question banks, the bilan's
-- "valeurs professionnelles" and "centres d'intérêt" questionnaires, and seeds
-- them (24 + 24 questions, French, Likert 1-5). There is no forward reference
-- and the seed stays in the core phase where the guide puts it.
--
-- Seeds are idempotent: the natural key is the question code
-- (ON CONFLICT (code) DO NOTHING), so edits made later by admins are kept.
--
-- The two banks are reference data standing on their own (set_updated_at()
-- of 001 only); nothing of 006 (assessment drafts) is involved, so the
-- guide's order 006 -> 007 is declared rather than inferred.
--
-- depends: 006

CREATE TABLE IF NOT EXISTS values_questions (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    code            varchar(20) NOT NULL UNIQUE CHECK (code ~ '^VAL-[0-9]{2}$'),
    value_dimension varchar(30) NOT NULL
        CHECK (value_dimension IN ('autonomie', 'securite', 'reconnaissance', 'equilibre',
                                   'creativite', 'utilite_sociale', 'relations', 'remuneration')),
    question_text   text        NOT NULL CHECK (length(btrim(question_text)) > 0),
    response_scale  varchar(20) NOT NULL DEFAULT 'likert_5'
        CHECK (response_scale IN ('likert_5', 'likert_7', 'yes_no')),
    reverse_scored  boolean     NOT NULL DEFAULT false,
    display_order   smallint    NOT NULL CHECK (display_order > 0),
    is_active       boolean     NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE values_questions IS
    'Questionnaire "valeurs professionnelles": « Dans mon travail, il est important pour moi de... »';

CREATE TABLE IF NOT EXISTS interests_questions (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    code            varchar(20) NOT NULL UNIQUE CHECK (code ~ '^INT-[0-9]{2}$'),
    interest_domain varchar(30) NOT NULL
        CHECK (interest_domain IN ('technique', 'scientifique', 'artistique', 'social',
                                   'commercial', 'administratif', 'nature', 'numerique')),
    question_text   text        NOT NULL CHECK (length(btrim(question_text)) > 0),
    response_scale  varchar(20) NOT NULL DEFAULT 'likert_5'
        CHECK (response_scale IN ('likert_5', 'likert_7', 'yes_no')),
    display_order   smallint    NOT NULL CHECK (display_order > 0),
    is_active       boolean     NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE interests_questions IS
    'Questionnaire "centres d''intérêt": « J''aimerais, dans mon activité professionnelle... »';

CREATE INDEX IF NOT EXISTS idx_values_questions_dimension
    ON values_questions (value_dimension, display_order) WHERE is_active;
CREATE INDEX IF NOT EXISTS idx_interests_questions_domain
    ON interests_questions (interest_domain, display_order) WHERE is_active;

DROP TRIGGER IF EXISTS trg_values_questions_updated_at ON values_questions;
CREATE TRIGGER trg_values_questions_updated_at BEFORE UPDATE ON values_questions
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

DROP TRIGGER IF EXISTS trg_interests_questions_updated_at ON interests_questions;
CREATE TRIGGER trg_interests_questions_updated_at BEFORE UPDATE ON interests_questions
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

INSERT INTO values_questions (code, value_dimension, question_text, display_order) VALUES
    ('VAL-01', 'autonomie',       'Organiser moi-même mon travail et mon emploi du temps.', 1),
    ('VAL-02', 'autonomie',       'Prendre des décisions sans devoir systématiquement en référer à un supérieur.', 2),
    ('VAL-03', 'autonomie',       'Choisir mes méthodes pour atteindre les objectifs fixés.', 3),
    ('VAL-04', 'securite',        'Bénéficier d''un emploi stable et d''un contrat durable.', 4),
    ('VAL-05', 'securite',        'Savoir précisément ce que l''on attend de moi.', 5),
    ('VAL-06', 'securite',        'Travailler dans une organisation solide et pérenne.', 6),
    ('VAL-07', 'reconnaissance',  'Voir mes efforts et mes résultats reconnus par ma hiérarchie.', 7),
    ('VAL-08', 'reconnaissance',  'Recevoir régulièrement des retours sur la qualité de mon travail.', 8),
    ('VAL-09', 'reconnaissance',  'Occuper un poste valorisé par mon entourage professionnel.', 9),
    ('VAL-10', 'equilibre',       'Préserver du temps pour ma vie personnelle et familiale.', 10),
    ('VAL-11', 'equilibre',       'Avoir des horaires compatibles avec mes engagements en dehors du travail.', 11),
    ('VAL-12', 'equilibre',       'Limiter les déplacements professionnels et les temps de trajet.', 12),
    ('VAL-13', 'creativite',      'Imaginer des solutions nouvelles plutôt qu''appliquer des procédures.', 13),
    ('VAL-14', 'creativite',      'Exprimer ma créativité dans les tâches que je réalise.', 14),
    ('VAL-15', 'creativite',      'Contribuer à des projets innovants.', 15),
    ('VAL-16', 'utilite_sociale', 'Me sentir utile aux autres et à la société.', 16),
    ('VAL-17', 'utilite_sociale', 'Travailler pour une structure dont je partage les valeurs.', 17),
    ('VAL-18', 'utilite_sociale', 'Contribuer à des enjeux environnementaux ou solidaires.', 18),
    ('VAL-19', 'relations',       'Travailler au sein d''une équipe soudée.', 19),
    ('VAL-20', 'relations',       'Entretenir des relations chaleureuses avec mes collègues.', 20),
    ('VAL-21', 'relations',       'Être en contact régulier avec des clients, des usagers ou des partenaires.', 21),
    ('VAL-22', 'remuneration',    'Percevoir une rémunération à la hauteur de mes compétences.', 22),
    ('VAL-23', 'remuneration',    'Avoir des perspectives d''augmentation de salaire.', 23),
    ('VAL-24', 'remuneration',    'Bénéficier d''avantages sociaux (mutuelle, intéressement, télétravail...).', 24)
ON CONFLICT (code) DO NOTHING;

INSERT INTO interests_questions (code, interest_domain, question_text, display_order) VALUES
    ('INT-01', 'technique',     'Réparer, assembler ou entretenir des machines et des équipements.', 1),
    ('INT-02', 'technique',     'Utiliser des outils et travailler de mes mains.', 2),
    ('INT-03', 'technique',     'Suivre la réalisation concrète d''un chantier ou d''une fabrication.', 3),
    ('INT-04', 'scientifique',  'Analyser des données pour comprendre un phénomène.', 4),
    ('INT-05', 'scientifique',  'Mener des expériences ou des recherches.', 5),
    ('INT-06', 'scientifique',  'Résoudre des problèmes complexes qui demandent de la rigueur.', 6),
    ('INT-07', 'artistique',    'Créer des visuels, des textes ou des objets originaux.', 7),
    ('INT-08', 'artistique',    'Travailler dans le domaine de la culture ou du spectacle.', 8),
    ('INT-09', 'artistique',    'Concevoir l''aménagement ou la décoration d''un espace.', 9),
    ('INT-10', 'social',        'Accompagner des personnes qui traversent des difficultés.', 10),
    ('INT-11', 'social',        'Former, enseigner ou transmettre un savoir-faire.', 11),
    ('INT-12', 'social',        'Écouter et conseiller des personnes.', 12),
    ('INT-13', 'commercial',    'Convaincre un client ou négocier un contrat.', 13),
    ('INT-14', 'commercial',    'Développer une activité ou créer une entreprise.', 14),
    ('INT-15', 'commercial',    'Animer une équipe et fixer des objectifs.', 15),
    ('INT-16', 'administratif', 'Gérer des dossiers, des budgets ou des plannings.', 16),
    ('INT-17', 'administratif', 'Appliquer et faire respecter des règles et des procédures.', 17),
    ('INT-18', 'administratif', 'Classer, vérifier et organiser des informations.', 18),
    ('INT-19', 'nature',        'Travailler en extérieur, au contact de la nature.', 19),
    ('INT-20', 'nature',        'M''occuper d''animaux ou de cultures.', 20),
    ('INT-21', 'nature',        'Agir concrètement pour la protection de l''environnement.', 21),
    ('INT-22', 'numerique',     'Développer des applications ou des sites web.', 22),
    ('INT-23', 'numerique',     'Administrer des systèmes informatiques ou des réseaux.', 23),
    ('INT-24', 'numerique',     'Explorer les usages de l''intelligence artificielle et des données.', 24)
ON CONFLICT (code) DO NOTHING;
