-- Migration 021: MBTI questions (seed)
--
-- Creates mbti_questions and seeds the forced-choice questionnaire used in the
-- investigation phase to explore work preferences along the four dimensions
-- Extraversion/Introversion, Sensation/iNtuition, Thinking (pensée)/Feeling
-- (sentiment) and Judging/Perceiving: 12 questions per dimension, 48 in all.
-- Each question offers two answers, each pointing to one pole of its
-- dimension; the poles alternate between option A and option B to avoid a
-- response bias. Results are stored in test_results (020).
--
-- Scoring uses the key of this bank (the pole of each option):
--   mbti_score(answers)   answers {"MBTI-EI-01": "A", ...} -> votes per pole
--                         {"E": n, "I": n, ...} and the four-letter type
--                         (ties go to I, N, F, P, the usual MBTI convention;
--                         NULL while a dimension has no answer);
--   test_results_score()  BEFORE INSERT OR UPDATE OF status, answers trigger
--                         on test_results: when a test is completed, stores
--                         its scores and result_code.
-- Migration 022 extends test_results_score() to RIASEC. It is therefore
-- created here only when absent, so re-running 021 after 022 keeps the
-- extended version (the rollback of 022 restores this one).
--
-- Seed is idempotent: natural key code (MBTI-<dimension>-<nn>),
-- ON CONFLICT DO NOTHING.

CREATE TABLE IF NOT EXISTS mbti_questions (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    code          varchar(20) NOT NULL UNIQUE CHECK (code ~ '^MBTI-(EI|SN|TF|JP)-[0-9]{2}$'),
    dimension     char(2)     NOT NULL CHECK (dimension IN ('EI', 'SN', 'TF', 'JP')),
    question_text text        NOT NULL CHECK (length(btrim(question_text)) > 0),
    option_a_text text        NOT NULL,
    option_a_pole char(1)     NOT NULL,
    option_b_text text        NOT NULL,
    option_b_pole char(1)     NOT NULL,
    display_order smallint    NOT NULL CHECK (display_order > 0),
    is_active     boolean     NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT mbti_questions_poles_check CHECK (
        option_a_pole <> option_b_pole
        AND strpos(dimension, option_a_pole) > 0
        AND strpos(dimension, option_b_pole) > 0),
    CONSTRAINT mbti_questions_code_dimension_check CHECK (substr(code, 6, 2) = dimension)
);

CREATE INDEX IF NOT EXISTS idx_mbti_questions_order ON mbti_questions (display_order) WHERE is_active;
CREATE INDEX IF NOT EXISTS idx_mbti_questions_dimension ON mbti_questions (dimension);

DROP TRIGGER IF EXISTS trg_mbti_questions_updated_at ON mbti_questions;
CREATE TRIGGER trg_mbti_questions_updated_at BEFORE UPDATE ON mbti_questions
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

INSERT INTO mbti_questions (code, dimension, question_text, option_a_text, option_a_pole,
                            option_b_text, option_b_pole, display_order) VALUES
    ('MBTI-EI-01', 'EI', 'Après une journée de travail chargée, pour récupérer, vous préférez...',
        'retrouver des amis ou des collègues', 'E', 'passer une soirée calme, seul ou avec un proche', 'I', 1),
    ('MBTI-SN-01', 'SN', 'Dans votre travail, vous faites davantage confiance à...',
        'les faits concrets et l''expérience', 'S', 'votre intuition et les possibilités futures', 'N', 2),
    ('MBTI-TF-01', 'TF', 'Pour prendre une décision importante, vous vous fiez surtout à...',
        'une analyse logique des avantages et des inconvénients', 'T', 'vos valeurs et l''impact sur les personnes concernées', 'F', 3),
    ('MBTI-JP-01', 'JP', 'Pour organiser votre semaine de travail, vous...',
        'planifiez vos tâches à l''avance', 'J', 'vous adaptez au fil des imprévus', 'P', 4),
    ('MBTI-EI-02', 'EI', 'En réunion, vous avez plutôt tendance à...',
        'réfléchir longuement avant de prendre la parole', 'I', 'exprimer vos idées au fil de la discussion', 'E', 5),
    ('MBTI-SN-02', 'SN', 'Face à une nouvelle tâche, vous préférez...',
        'imaginer de nouvelles façons de faire', 'N', 'suivre une méthode qui a fait ses preuves', 'S', 6),
    ('MBTI-TF-02', 'TF', 'Lors d''un désaccord avec un collègue, vous cherchez d''abord à...',
        'préserver la relation', 'F', 'établir qui a raison sur le fond', 'T', 7),
    ('MBTI-JP-02', 'JP', 'Face à une échéance, vous avez tendance à...',
        'travailler dans l''urgence, au dernier moment', 'P', 'terminer bien avant la date limite', 'J', 8),
    ('MBTI-EI-03', 'EI', 'Lors d''un événement professionnel où vous connaissez peu de monde, vous...',
        'allez facilement vers de nouvelles personnes', 'E', 'restez auprès des personnes que vous connaissez', 'I', 9),
    ('MBTI-SN-03', 'SN', 'Vous êtes plus attiré par un métier qui...',
        'produit des résultats concrets et visibles', 'S', 'permet d''explorer des idées et des concepts', 'N', 10),
    ('MBTI-TF-03', 'TF', 'Selon vous, un bon manager est avant tout...',
        'juste et cohérent dans ses décisions', 'T', 'attentif et bienveillant envers son équipe', 'F', 11),
    ('MBTI-JP-03', 'JP', 'Vous vous sentez plus à l''aise quand...',
        'les décisions sont prises et les choses réglées', 'J', 'les options restent ouvertes', 'P', 12),
    ('MBTI-EI-04', 'EI', 'Pour résoudre un problème, vous préférez...',
        'y réfléchir seul avant d''en parler', 'I', 'en discuter avec d''autres pour avancer', 'E', 13),
    ('MBTI-SN-04', 'SN', 'Lorsque vous lisez des consignes, vous...',
        'retenez d''abord l''idée générale', 'N', 'suivez chaque étape avec précision', 'S', 14),
    ('MBTI-TF-04', 'TF', 'Quand un collègue vous présente son travail, vous...',
        'commencez par souligner ce qui est réussi', 'F', 'relevez d''abord ce qui peut être amélioré', 'T', 15),
    ('MBTI-JP-04', 'JP', 'En vacances, vous préférez...',
        'improviser selon vos envies', 'P', 'suivre un programme préparé à l''avance', 'J', 16),
    ('MBTI-EI-05', 'EI', 'Comme environnement de travail, vous appréciez...',
        'un espace ouvert, animé et plein d''échanges', 'E', 'un bureau calme où vous pouvez vous concentrer', 'I', 17),
    ('MBTI-SN-05', 'SN', 'Quand vous racontez un événement, vous insistez plutôt sur...',
        'les détails précis de ce qui s''est passé', 'S', 'le sens et les impressions qui s''en dégagent', 'N', 18),
    ('MBTI-TF-05', 'TF', 'Vous êtes plus sensible à...',
        'un argument rationnel', 'T', 'un témoignage touchant', 'F', 19),
    ('MBTI-JP-05', 'JP', 'Votre espace de travail est plutôt...',
        'rangé et organisé', 'J', 'en désordre apparent, mais vous vous y retrouvez', 'P', 20),
    ('MBTI-EI-06', 'EI', 'Vos collègues vous décriraient plutôt comme...',
        'une personne discrète et réservée', 'I', 'une personne expansive et communicative', 'E', 21),
    ('MBTI-SN-06', 'SN', 'On vous complimente plus souvent pour...',
        'votre imagination', 'N', 'votre sens pratique', 'S', 22),
    ('MBTI-TF-06', 'TF', 'Dans une équipe, on vous sollicite plutôt pour...',
        'apaiser les tensions', 'F', 'analyser un problème complexe', 'T', 23),
    ('MBTI-JP-06', 'JP', 'Quand un projet change de direction en cours de route, vous...',
        'y voyez une occasion stimulante', 'P', 'trouvez cela déstabilisant', 'J', 24),
    ('MBTI-EI-07', 'EI', 'Lorsque le téléphone sonne, vous...',
        'décrochez volontiers, même sans savoir qui appelle', 'E', 'préférez souvent laisser un message et rappeler plus tard', 'I', 25),
    ('MBTI-SN-07', 'SN', 'Vous préférez les projets...',
        'bien définis, aux objectifs concrets', 'S', 'ouverts, où tout reste à inventer', 'N', 26),
    ('MBTI-TF-07', 'TF', 'Face à une règle qui pénalise injustement une personne, vous...',
        'appliquez la règle, qui vaut pour tous', 'T', 'cherchez une exception adaptée à la situation', 'F', 27),
    ('MBTI-JP-07', 'JP', 'Les listes de tâches, vous les utilisez...',
        'régulièrement, et vous aimez les cocher', 'J', 'rarement, vous préférez rester flexible', 'P', 28),
    ('MBTI-EI-08', 'EI', 'Vous vous sentez plus à l''aise pour...',
        'écrire un message réfléchi', 'I', 'avoir une conversation spontanée', 'E', 29),
    ('MBTI-SN-08', 'SN', 'Dans un projet, ce qui vous intéresse le plus est...',
        'la vision d''ensemble et les perspectives', 'N', 'la mise en œuvre concrète', 'S', 30),
    ('MBTI-TF-08', 'TF', 'Vous préférez être reconnu pour...',
        'votre empathie', 'F', 'votre compétence', 'T', 31),
    ('MBTI-JP-08', 'JP', 'Dans votre travail, vous appréciez...',
        'la variété et la surprise', 'P', 'la régularité et la prévisibilité', 'J', 32),
    ('MBTI-EI-09', 'EI', 'Pendant la pause déjeuner, vous préférez...',
        'déjeuner en groupe', 'E', 'profiter d''un moment au calme', 'I', 33),
    ('MBTI-SN-09', 'SN', 'Face à un changement d''organisation, vous vous demandez d''abord...',
        'comment cela va fonctionner en pratique', 'S', 'quelles nouvelles possibilités cela ouvre', 'N', 34),
    ('MBTI-TF-09', 'TF', 'Lorsqu''il faut annoncer une mauvaise nouvelle, vous privilégiez...',
        'la clarté et la franchise', 'T', 'le tact et la manière', 'F', 35),
    ('MBTI-JP-09', 'JP', 'Avant de commencer une tâche, vous...',
        'définissez un plan précis', 'J', 'vous lancez et ajustez en avançant', 'P', 36),
    ('MBTI-EI-10', 'EI', 'Face à une nouvelle équipe, vous...',
        'prenez le temps d''observer avant de vous impliquer', 'I', 'vous intégrez rapidement en multipliant les échanges', 'E', 37),
    ('MBTI-SN-10', 'SN', 'Vous êtes plutôt quelqu''un...',
        'd''inventif, qui aime les idées nouvelles', 'N', 'de réaliste, qui garde les pieds sur terre', 'S', 38),
    ('MBTI-TF-10', 'TF', 'Pour choisir un emploi, le critère le plus important serait...',
        'l''ambiance et les valeurs de l''équipe', 'F', 'l''intérêt des missions et les perspectives', 'T', 39),
    ('MBTI-JP-10', 'JP', 'Lorsqu''une décision peut attendre, vous préférez...',
        'prendre le temps de recueillir plus d''informations', 'P', 'trancher rapidement', 'J', 40),
    ('MBTI-EI-11', 'EI', 'Votre réseau professionnel est plutôt...',
        'large, avec de nombreux contacts', 'E', 'restreint, avec quelques relations approfondies', 'I', 41),
    ('MBTI-SN-11', 'SN', 'Dans une formation, vous appréciez surtout...',
        'les exemples pratiques et les cas concrets', 'S', 'les théories et les modèles explicatifs', 'N', 42),
    ('MBTI-TF-11', 'TF', 'Dans un débat, vous cherchez surtout à...',
        'trouver la solution la plus logique', 'T', 'parvenir à un accord qui convienne à chacun', 'F', 43),
    ('MBTI-JP-11', 'JP', 'Les règles et les procédures sont pour vous...',
        'des repères utiles', 'J', 'des contraintes à adapter', 'P', 44),
    ('MBTI-EI-12', 'EI', 'Quand vous apprenez quelque chose de nouveau, vous préférez...',
        'lire et vous documenter seul', 'I', 'échanger et pratiquer avec d''autres', 'E', 45),
    ('MBTI-SN-12', 'SN', 'Quand vous pensez à votre avenir professionnel, vous...',
        'imaginez plusieurs scénarios possibles', 'N', 'vous appuyez sur ce que vous savez déjà faire', 'S', 46),
    ('MBTI-TF-12', 'TF', 'Vous vous décririez plutôt comme...',
        'chaleureux et compréhensif', 'F', 'objectif et analytique', 'T', 47),
    ('MBTI-JP-12', 'JP', 'On vous reproche parfois...',
        'de remettre les choses à plus tard', 'P', 'd''être trop rigide', 'J', 48)
ON CONFLICT (code) DO NOTHING;

-- Scoring of a completed MBTI questionnaire.
CREATE OR REPLACE FUNCTION mbti_score(p_answers jsonb, OUT scores jsonb, OUT result_code varchar)
LANGUAGE sql STABLE
AS $fn$
    WITH votes AS (
        SELECT CASE upper(a.value) WHEN 'A' THEN q.option_a_pole
                                   WHEN 'B' THEN q.option_b_pole END::text AS pole
        FROM jsonb_each_text(p_answers) AS a
        JOIN mbti_questions q ON q.code = a.key
    ),
    tally AS (
        SELECT p.pole, p.dimension_order, p.wins_ties, count(v.pole) AS votes
        FROM (VALUES ('E', 1, false), ('I', 1, true), ('S', 2, false), ('N', 2, true),
                     ('T', 3, false), ('F', 3, true), ('J', 4, false), ('P', 4, true))
             AS p (pole, dimension_order, wins_ties)
        LEFT JOIN votes v ON v.pole = p.pole
        GROUP BY p.pole, p.dimension_order, p.wins_ties
    ),
    preferred AS (
        SELECT DISTINCT ON (t.dimension_order) t.dimension_order, t.pole, t.votes
        FROM tally t
        ORDER BY t.dimension_order, t.votes DESC, t.wins_ties DESC
    )
    SELECT (SELECT jsonb_object_agg(t.pole, t.votes) FROM tally t),
           (SELECT CASE WHEN bool_and(p.votes > 0)
                        THEN string_agg(p.pole, '' ORDER BY p.dimension_order) END
            FROM preferred p);
$fn$;

COMMENT ON FUNCTION mbti_score(jsonb) IS
    'Votes per MBTI pole and four-letter type of answers {question code: "A" | "B"}.';

DO $do$
BEGIN
    IF to_regprocedure('test_results_score()') IS NULL THEN
        CREATE FUNCTION test_results_score()
        RETURNS trigger
        LANGUAGE plpgsql
        AS $fn$
BEGIN
    IF NEW.status = 'completed' AND NEW.test_type = 'mbti' THEN
        SELECT s.scores, s.result_code INTO NEW.scores, NEW.result_code
        FROM mbti_score(NEW.answers) AS s;
    END IF;
    RETURN NEW;
END;
$fn$;
    END IF;
END;
$do$;

DROP TRIGGER IF EXISTS trg_test_results_score ON test_results;
CREATE TRIGGER trg_test_results_score BEFORE INSERT OR UPDATE OF status, answers ON test_results
    FOR EACH ROW EXECUTE FUNCTION test_results_score();
