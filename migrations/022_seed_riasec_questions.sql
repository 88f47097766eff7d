-- Migration 022: RIASEC questions (seed)
--
-- Creates riasec_questions and seeds the Holland (RIASEC) interest inventory
-- used to explore career directions: Réaliste, Investigateur, Artistique,
-- Social, Entreprenant, Conventionnel. 8 activities per type, 48 in all,
-- presented interleaved (R, I, A, S, E, C, R, ...) and rated on a 1-5 scale
-- (« Cette activité me plairait... »). The three highest types give the
-- Holland code stored in test_results.result_code (020).
--
-- Scoring, next to the MBTI scoring of 021:
--   riasec_score(answers)  answers {"RIASEC-R-01": 4, ...} (ratings 1-5) ->
--                          total per type {"R": n, ..., "C": n} and the
--                          Holland code of the (up to) three highest types,
--                          ties in hexagon order R, I, A, S, E, C;
--   test_results_score()   the scoring trigger function of 021, extended so
--                          that completed RIASEC tests are scored as well.
-- The rollback restores the 021 version of test_results_score().
--
-- Seed is idempotent: natural key code (RIASEC-<type>-<nn>),
-- ON CONFLICT DO NOTHING.

CREATE TABLE IF NOT EXISTS riasec_questions (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    code          varchar(20) NOT NULL UNIQUE CHECK (code ~ '^RIASEC-[RIASEC]-[0-9]{2}$'),
    category      char(1)     NOT NULL CHECK (category IN ('R', 'I', 'A', 'S', 'E', 'C')),
    question_text text        NOT NULL CHECK (length(btrim(question_text)) > 0),
    display_order smallint    NOT NULL CHECK (display_order > 0),
    is_active     boolean     NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT riasec_questions_code_category_check CHECK (substr(code, 8, 1) = category)
);

COMMENT ON COLUMN riasec_questions.category IS
    'R réaliste, I investigateur, A artistique, S social, E entreprenant, C conventionnel.';

CREATE INDEX IF NOT EXISTS idx_riasec_questions_order ON riasec_questions (display_order) WHERE is_active;
CREATE INDEX IF NOT EXISTS idx_riasec_questions_category ON riasec_questions (category);

DROP TRIGGER IF EXISTS trg_riasec_questions_updated_at ON riasec_questions;
CREATE TRIGGER trg_riasec_questions_updated_at BEFORE UPDATE ON riasec_questions
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

INSERT INTO riasec_questions (code, category, question_text, display_order) VALUES
    ('RIASEC-R-01', 'R', 'Réparer un appareil électrique ou mécanique.', 1),
    ('RIASEC-I-01', 'I', 'Comprendre le fonctionnement d''un phénomène scientifique.', 2),
    ('RIASEC-A-01', 'A', 'Dessiner, peindre ou photographier.', 3),
    ('RIASEC-S-01', 'S', 'Aider des personnes à résoudre leurs problèmes personnels.', 4),
    ('RIASEC-E-01', 'E', 'Diriger une équipe ou un projet.', 5),
    ('RIASEC-C-01', 'C', 'Tenir une comptabilité ou suivre un budget.', 6),
    ('RIASEC-R-02', 'R', 'Travailler le bois, le métal ou d''autres matériaux.', 7),
    ('RIASEC-I-02', 'I', 'Analyser des données pour en tirer des conclusions.', 8),
    ('RIASEC-A-02', 'A', 'Écrire des textes, des articles ou des histoires.', 9),
    ('RIASEC-S-02', 'S', 'Enseigner ou animer une formation.', 10),
    ('RIASEC-E-02', 'E', 'Vendre un produit ou un service.', 11),
    ('RIASEC-C-02', 'C', 'Classer et archiver des documents.', 12),
    ('RIASEC-R-03', 'R', 'Conduire ou piloter des engins ou des véhicules.', 13),
    ('RIASEC-I-03', 'I', 'Mener une enquête ou une recherche approfondie.', 14),
    ('RIASEC-A-03', 'A', 'Jouer de la musique, chanter ou faire du théâtre.', 15),
    ('RIASEC-S-03', 'S', 'Soigner ou prendre soin de personnes malades ou âgées.', 16),
    ('RIASEC-E-03', 'E', 'Négocier un contrat ou un budget.', 17),
    ('RIASEC-C-03', 'C', 'Saisir et vérifier des données dans un tableur.', 18),
    ('RIASEC-R-04', 'R', 'Installer ou entretenir des équipements techniques.', 19),
    ('RIASEC-I-04', 'I', 'Résoudre des problèmes de logique ou de mathématiques.', 20),
    ('RIASEC-A-04', 'A', 'Concevoir un logo, une affiche ou un site au design soigné.', 21),
    ('RIASEC-S-04', 'S', 'Accueillir et renseigner du public.', 22),
    ('RIASEC-E-04', 'E', 'Créer et développer votre propre entreprise.', 23),
    ('RIASEC-C-04', 'C', 'Appliquer des procédures précises.', 24),
    ('RIASEC-R-05', 'R', 'Travailler en plein air sur un chantier ou une exploitation.', 25),
    ('RIASEC-I-05', 'I', 'Réaliser des expériences en laboratoire.', 26),
    ('RIASEC-A-05', 'A', 'Imaginer la décoration ou l''aménagement d''un lieu.', 27),
    ('RIASEC-S-05', 'S', 'Accompagner des jeunes dans leur orientation.', 28),
    ('RIASEC-E-05', 'E', 'Convaincre un auditoire lors d''une présentation.', 29),
    ('RIASEC-C-05', 'C', 'Préparer des dossiers administratifs complets.', 30),
    ('RIASEC-R-06', 'R', 'Utiliser des machines-outils ou des outils de précision.', 31),
    ('RIASEC-I-06', 'I', 'Lire des articles scientifiques ou techniques.', 32),
    ('RIASEC-A-06', 'A', 'Créer des vêtements, des bijoux ou des objets.', 33),
    ('RIASEC-S-06', 'S', 'Participer à des actions associatives ou bénévoles.', 34),
    ('RIASEC-E-06', 'E', 'Prendre des décisions qui engagent une organisation.', 35),
    ('RIASEC-C-06', 'C', 'Contrôler la conformité d''un document ou d''un produit.', 36),
    ('RIASEC-R-07', 'R', 'Monter un meuble ou un équipement à partir d''un plan.', 37),
    ('RIASEC-I-07', 'I', 'Diagnostiquer l''origine d''une panne ou d''une maladie.', 38),
    ('RIASEC-A-07', 'A', 'Réaliser une vidéo ou un montage audiovisuel.', 39),
    ('RIASEC-S-07', 'S', 'Animer des activités pour un groupe.', 40),
    ('RIASEC-E-07', 'E', 'Développer un réseau de clients ou de partenaires.', 41),
    ('RIASEC-C-07', 'C', 'Planifier des rendez-vous et gérer un agenda.', 42),
    ('RIASEC-R-08', 'R', 'Effectuer des travaux physiques qui donnent un résultat concret.', 43),
    ('RIASEC-I-08', 'I', 'Mettre au point un modèle ou une méthode d''analyse.', 44),
    ('RIASEC-A-08', 'A', 'Exprimer des émotions ou des idées de façon originale.', 45),
    ('RIASEC-S-08', 'S', 'Écouter et conseiller une personne en difficulté.', 46),
    ('RIASEC-E-08', 'E', 'Vous fixer des objectifs ambitieux et les atteindre.', 47),
    ('RIASEC-C-08', 'C', 'Rédiger des comptes rendus structurés.', 48)
ON CONFLICT (code) DO NOTHING;

-- Scoring of a completed RIASEC inventory.
CREATE OR REPLACE FUNCTION riasec_score(p_answers jsonb, OUT scores jsonb, OUT result_code varchar)
LANGUAGE sql STABLE
AS $fn$
    WITH ratings AS (
        SELECT x.category, x.rating
        FROM (SELECT q.category::text AS category,
                     CASE WHEN jsonb_typeof(a.value) = 'number' THEN (a.value)::numeric END AS rating
              FROM jsonb_each(p_answers) AS a
              JOIN riasec_questions q ON q.code = a.key) AS x
        WHERE x.rating BETWEEN 1 AND 5
    ),
    tally AS (
        SELECT t.category, t.hexagon_order, coalesce(sum(r.rating), 0) AS total
        FROM (VALUES ('R', 1), ('I', 2), ('A', 3), ('S', 4), ('E', 5), ('C', 6))
             AS t (category, hexagon_order)
        LEFT JOIN ratings r ON r.category = t.category
        GROUP BY t.category, t.hexagon_order
    ),
    ranked AS (
        SELECT t.category, row_number() OVER (ORDER BY t.total DESC, t.hexagon_order) AS rank
        FROM tally t
        WHERE t.total > 0
    )
    SELECT (SELECT jsonb_object_agg(t.category, t.total) FROM tally t),
           (SELECT string_agg(k.category, '' ORDER BY k.rank) FROM ranked k WHERE k.rank <= 3);
$fn$;

COMMENT ON FUNCTION riasec_score(jsonb) IS
    'Total per RIASEC type and Holland code (three highest types) of answers {question code: 1-5}.';

-- Extends the scoring trigger function of 021 to RIASEC.
CREATE OR REPLACE FUNCTION test_results_score()
RETURNS trigger
LANGUAGE plpgsql
AS $fn$
BEGIN
    IF NEW.status = 'completed' AND NEW.test_type = 'mbti' THEN
        SELECT s.scores, s.result_code INTO NEW.scores, NEW.result_code
        FROM mbti_score(NEW.answers) AS s;
    ELSIF NEW.status = 'completed' AND NEW.test_type = 'riasec' THEN
        SELECT s.scores, s.result_code INTO NEW.scores, NEW.result_code
        FROM riasec_score(NEW.answers) AS s;
    END IF;
    RETURN NEW;
END;
$fn$;
