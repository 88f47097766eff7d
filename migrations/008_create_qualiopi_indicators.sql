-- Migration 008: Qualiopi indicators (Référentiel National Qualité)
--
-- Creates qualiopi_indicators and seeds the national quality framework that
-- every provider of bilans de compétences must be certified against (Qualiopi,
-- Code du travail L6316-1 and décret 2019-565): 7 criteria, 32 indicators.
--   criterion 1: indicators 1-3     criterion 5: 21-22
--   criterion 2: 4-8                criterion 6: 23-29
--   criterion 3: 9-16               criterion 7: 30-32
--   criterion 4: 17-20
-- The criterion is stored on each indicator (criterion_number/criterion_title)
-- rather than in a separate table: the schema keeps the 43 tables of the guide.
-- Indicators specific to certifying courses, apprenticeship (CFA) or work-based
-- training do not apply to a bilan de compétences (applies_to_bilan = false).
-- First migration of the Qualiopi chain 008 -> 013; it needs only the core
-- schema (set_updated_at from 001).
--
-- Seed is idempotent: natural key indicator_number, ON CONFLICT DO NOTHING.
--
-- depends: 001

CREATE TABLE IF NOT EXISTS qualiopi_indicators (
    id                uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    indicator_number  smallint     NOT NULL UNIQUE CHECK (indicator_number BETWEEN 1 AND 32),
    criterion_number  smallint     NOT NULL CHECK (criterion_number BETWEEN 1 AND 7),
    criterion_title   text         NOT NULL,
    title             varchar(255) NOT NULL,
    description       text         NOT NULL,
    expected_evidence text,
    applicability     varchar(20)  NOT NULL DEFAULT 'all'
        CHECK (applicability IN ('all', 'certification', 'apprentissage', 'alternance',
                                 'sous_traitance')),
    applies_to_bilan  boolean      NOT NULL DEFAULT true,
    created_at        timestamptz  NOT NULL DEFAULT now(),
    updated_at        timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT qualiopi_indicators_criterion_range_check CHECK (
           (criterion_number = 1 AND indicator_number BETWEEN 1 AND 3)
        OR (criterion_number = 2 AND indicator_number BETWEEN 4 AND 8)
        OR (criterion_number = 3 AND indicator_number BETWEEN 9 AND 16)
        OR (criterion_number = 4 AND indicator_number BETWEEN 17 AND 20)
        OR (criterion_number = 5 AND indicator_number BETWEEN 21 AND 22)
        OR (criterion_number = 6 AND indicator_number BETWEEN 23 AND 29)
        OR (criterion_number = 7 AND indicator_number BETWEEN 30 AND 32))
);

COMMENT ON TABLE qualiopi_indicators IS
    'Référentiel National Qualité (Qualiopi): 7 critères, 32 indicateurs (reference data).';

CREATE INDEX IF NOT EXISTS idx_qualiopi_indicators_criterion
    ON qualiopi_indicators (criterion_number, indicator_number);
CREATE INDEX IF NOT EXISTS idx_qualiopi_indicators_bilan
    ON qualiopi_indicators (indicator_number) WHERE applies_to_bilan;

DROP TRIGGER IF EXISTS trg_qualiopi_indicators_updated_at ON qualiopi_indicators;
CREATE TRIGGER trg_qualiopi_indicators_updated_at BEFORE UPDATE ON qualiopi_indicators
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

WITH criteria (criterion_number, criterion_title) AS (VALUES
    (1, 'Conditions d''information du public sur les prestations proposées, les délais pour y accéder et les résultats obtenus'),
    (2, 'Identification précise des objectifs des prestations proposées et adaptation de ces prestations aux publics bénéficiaires lors de leur conception'),
    (3, 'Adaptation aux publics bénéficiaires des prestations et des modalités d''accueil, d''accompagnement, de suivi et d''évaluation mises en œuvre'),
    (4, 'Adéquation des moyens pédagogiques, techniques et d''encadrement aux prestations mises en œuvre'),
    (5, 'Qualification et développement des connaissances et compétences des personnels chargés de mettre en œuvre les prestations'),
    (6, 'Inscription et investissement du prestataire dans son environnement professionnel'),
    (7, 'Recueil et prise en compte des appréciations et des réclamations formulées par les parties prenantes aux prestations délivrées')
),
indicators (indicator_number, criterion_number, title, description, expected_evidence, applicability, applies_to_bilan) AS (VALUES
    (1, 1, 'Information du public',
        'Le prestataire diffuse une information accessible au public, détaillée et vérifiable sur les prestations proposées : prérequis, objectifs, durée, modalités et délais d''accès, tarifs, contacts, méthodes mobilisées et modalités d''évaluation, accessibilité aux personnes handicapées.',
        'Site internet, plaquette ou catalogue à jour ; conditions générales de vente.', 'all', true),
    (2, 1, 'Indicateurs de résultats',
        'Le prestataire diffuse des indicateurs de résultats adaptés à la nature des prestations mises en œuvre et des publics accueillis.',
        'Taux de satisfaction et taux d''abandon publiés et datés.', 'all', true),
    (3, 1, 'Résultats des certifications',
        'Lorsque le prestataire met en œuvre des prestations conduisant à une certification professionnelle, il informe sur les taux d''obtention des certifications préparées, les possibilités de valider un ou des blocs de compétences, ainsi que sur les équivalences, passerelles, suites de parcours et débouchés.',
        'Taux d''obtention, fiches RNCP ou Répertoire spécifique.', 'certification', false),
    (4, 2, 'Analyse du besoin',
        'Le prestataire analyse le besoin du bénéficiaire en lien avec l''entreprise et/ou le financeur concerné(s).',
        'Entretien préalable tracé, grille d''analyse du besoin.', 'all', true),
    (5, 2, 'Objectifs de la prestation',
        'Le prestataire définit les objectifs opérationnels et évaluables de la prestation.',
        'Objectifs formalisés dans la convention et le programme.', 'all', true),
    (6, 2, 'Contenus et modalités de mise en œuvre',
        'Le prestataire établit les contenus et les modalités de mise en œuvre de la prestation, adaptés aux objectifs définis et aux publics bénéficiaires.',
        'Programme détaillé, déroulé des trois phases du bilan.', 'all', true),
    (7, 2, 'Adéquation aux exigences de la certification',
        'Lorsque le prestataire met en œuvre des prestations conduisant à une certification professionnelle, il s''assure de l''adéquation du ou des contenus de la prestation aux exigences de la certification visée.',
        'Tableau de correspondance entre programme et référentiel de certification.', 'certification', false),
    (8, 2, 'Positionnement à l''entrée',
        'Le prestataire détermine les procédures de positionnement et d''évaluation des acquis à l''entrée de la prestation.',
        'Questionnaire ou entretien de positionnement.', 'all', true),
    (9, 3, 'Conditions de déroulement',
        'Le prestataire informe les publics bénéficiaires sur les conditions de déroulement de la prestation.',
        'Livret d''accueil, convocation, règlement intérieur.', 'all', true),
    (10, 3, 'Adaptation de la prestation et suivi',
        'Le prestataire met en œuvre et adapte la prestation, l''accompagnement et le suivi aux publics bénéficiaires.',
        'Comptes rendus d''entretiens, adaptations tracées.', 'all', true),
    (11, 3, 'Évaluation de l''atteinte des objectifs',
        'Le prestataire évalue l''atteinte par les publics bénéficiaires des objectifs de la prestation.',
        'Document de synthèse remis au bénéficiaire, évaluations.', 'all', true),
    (12, 3, 'Engagement et prévention des ruptures',
        'Le prestataire décrit et met en œuvre les mesures pour favoriser l''engagement des bénéficiaires et prévenir les ruptures de parcours.',
        'Procédure de relance, suivi des absences et des abandons.', 'all', true),
    (13, 3, 'Coordination de l''alternance',
        'Pour les formations en alternance, le prestataire, en lien avec l''entreprise, anticipe avec l''apprenant les missions confiées et assure la coordination et la progressivité des apprentissages réalisés en centre de formation et en entreprise.',
        'Livret d''apprentissage, liaison avec le maître d''apprentissage.', 'alternance', false),
    (14, 3, 'Exercice de la citoyenneté',
        'Le prestataire met en œuvre un accompagnement socio-professionnel, éducatif et relatif à l''exercice de la citoyenneté.',
        'Actions d''accompagnement socio-professionnel des apprentis.', 'apprentissage', false),
    (15, 3, 'Droits et devoirs de l''apprenti',
        'Le prestataire informe les apprentis de leurs droits et devoirs en tant qu''apprentis et salariés ainsi que des règles applicables en matière de santé et de sécurité en milieu professionnel.',
        'Livret d''accueil de l''apprenti, émargements des informations.', 'apprentissage', false),
    (16, 3, 'Présentation à la certification',
        'Lorsque le prestataire met en œuvre des formations conduisant à une certification professionnelle, il s''assure que les conditions de présentation des bénéficiaires à la certification respectent les exigences formelles de l''autorité de certification.',
        'Inscriptions aux sessions de certification, habilitations.', 'certification', false),
    (17, 4, 'Moyens humains et techniques',
        'Le prestataire met à disposition ou s''assure de la mise à disposition des moyens humains et techniques adaptés et d''un environnement approprié (conditions, locaux, équipements, plateaux techniques...).',
        'Description des locaux et des outils, accès à la plateforme numérique.', 'all', true),
    (18, 4, 'Coordination des intervenants',
        'Le prestataire mobilise et coordonne les différents intervenants internes et/ou externes (pédagogiques, administratifs, logistiques, commerciaux...).',
        'Organigramme, planning des intervenants, réunions de coordination.', 'all', true),
    (19, 4, 'Ressources pédagogiques',
        'Le prestataire met à disposition du bénéficiaire des ressources pédagogiques et permet à celui-ci de se les approprier.',
        'Tests, fiches métiers et ressources documentaires mis à disposition.', 'all', true),
    (20, 4, 'Référents et conseil de perfectionnement',
        'Le prestataire dispose d''un personnel dédié à l''appui à la mobilité nationale et internationale, d''un référent handicap et d''un conseil de perfectionnement.',
        'Désignation des référents, comptes rendus du conseil de perfectionnement.', 'apprentissage', false),
    (21, 5, 'Compétences des intervenants',
        'Le prestataire détermine, mobilise et évalue les compétences des différents intervenants internes et/ou externes, adaptées aux prestations.',
        'CV et diplômes des consultants, grille d''évaluation des compétences.', 'all', true),
    (22, 5, 'Développement des compétences des salariés',
        'Le prestataire entretient et développe les compétences de ses salariés, adaptées aux prestations qu''il délivre.',
        'Plan de développement des compétences, attestations de formation.', 'all', true),
    (23, 6, 'Veille légale et réglementaire',
        'Le prestataire réalise une veille légale et réglementaire sur le champ de la formation professionnelle et en exploite les enseignements.',
        'Abonnements, notes de veille et leur diffusion en interne.', 'all', true),
    (24, 6, 'Veille sur les compétences, métiers et emplois',
        'Le prestataire réalise une veille sur les évolutions des compétences, des métiers et des emplois dans ses secteurs d''intervention et en exploite les enseignements.',
        'Veille sur les fiches ROME et les études sectorielles.', 'all', true),
    (25, 6, 'Veille pédagogique et technologique',
        'Le prestataire réalise une veille sur les innovations pédagogiques et technologiques permettant une évolution de ses prestations et en exploite les enseignements.',
        'Veille sur les outils d''évaluation et d''accompagnement.', 'all', true),
    (26, 6, 'Accueil des publics en situation de handicap',
        'Le prestataire mobilise les expertises, outils et réseaux nécessaires pour accueillir, accompagner, former ou orienter les publics en situation de handicap.',
        'Référent handicap désigné, partenariats (Agefiph, Cap emploi).', 'all', true),
    (27, 6, 'Sous-traitance et portage salarial',
        'Lorsque le prestataire fait appel à la sous-traitance ou au portage salarial, il s''assure du respect de la conformité au présent référentiel.',
        'Contrats de sous-traitance, contrôle qualité des sous-traitants.', 'sous_traitance', true),
    (28, 6, 'Formation en situation de travail',
        'Lorsque les prestations dispensées au bénéficiaire comprennent des périodes de formation en situation de travail, le prestataire mobilise son réseau de partenaires socio-économiques pour co-construire l''ingénierie de formation et favoriser l''accueil en entreprise.',
        'Conventions de partenariat avec les entreprises d''accueil.', 'alternance', false),
    (29, 6, 'Insertion professionnelle et poursuite d''études',
        'Le prestataire développe des actions qui concourent à l''insertion professionnelle ou à la poursuite d''études par la voie de l''apprentissage ou par toute autre voie permettant de développer les connaissances et les compétences.',
        'Suivi du devenir des apprentis, actions d''insertion.', 'apprentissage', false),
    (30, 7, 'Recueil des appréciations',
        'Le prestataire recueille les appréciations des parties prenantes : bénéficiaires, financeurs, équipes pédagogiques et entreprises concernées.',
        'Questionnaires de satisfaction à chaud et à froid (six mois après le bilan).', 'all', true),
    (31, 7, 'Traitement des difficultés et des réclamations',
        'Le prestataire met en œuvre des modalités de traitement des difficultés rencontrées par les parties prenantes, des réclamations exprimées par ces dernières et des aléas survenus en cours de prestation.',
        'Procédure et registre des réclamations.', 'all', true),
    (32, 7, 'Amélioration continue',
        'Le prestataire met en œuvre des mesures d''amélioration à partir de l''analyse des appréciations et des réclamations.',
        'Plan d''amélioration continue, actions tracées et évaluées.', 'all', true)
)
INSERT INTO qualiopi_indicators (indicator_number, criterion_number, criterion_title, title,
                                 description, expected_evidence, applicability, applies_to_bilan)
SELECT i.indicator_number, i.criterion_number, c.criterion_title, i.title,
       i.description, i.expected_evidence, i.applicability, i.applies_to_bilan
FROM indicators i
JOIN criteria c USING (criterion_number)
ORDER BY i.indicator_number
ON CONFLICT (indicator_number) DO NOTHING;
