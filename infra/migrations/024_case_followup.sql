-- Issue 15 part 1: cases followed up (docs/mediation.md, "Follow-up"): deadlines and overdue, one extension,
-- the case event log's kinds, and the parties' satisfaction answers.

-- due_at: filed + mediation.due_days; take_by: filed + mediation.take_within_h (it applies while no mediator
-- holds the case). The service sets both at open from its configuration; these defaults are the shipped
-- values, for a case opened by code that does not (and for the cases already open, from their filing).
ALTER TABLE cases ADD COLUMN due_at timestamptz NOT NULL DEFAULT now() + interval '30 days';
ALTER TABLE cases ADD COLUMN take_by timestamptz NOT NULL DEFAULT now() + interval '24 hours';
UPDATE cases SET due_at = created_at + interval '30 days', take_by = created_at + interval '24 hours';
-- set by the deadline sweep when an open case passes a deadline that applies (once: the sweep only looks at
-- cases without it); cleared when the case is in time again (a take, an extension)
ALTER TABLE cases ADD COLUMN overdue_since timestamptz;
-- a case's deadline is extended at most once (case.extend)
ALTER TABLE cases ADD COLUMN extended_at timestamptz;
CREATE INDEX cases_deadline_due ON cases (due_at)
    WHERE status NOT IN ('settled','failed','referred','withdrawn') AND overdue_since IS NULL;
CREATE INDEX cases_overdue ON cases (overdue_since)
    WHERE status NOT IN ('settled','failed','referred','withdrawn') AND overdue_since IS NOT NULL;

-- The event log's kinds are the words of docs/mediation.md ("Event log"): `invited` and `proposed` were
-- written `agency_invited` and `agreement_proposed` before. The log is append-only (002's trigger): its
-- trigger is set aside for this one rename, in this transaction, and set back.
ALTER TABLE case_events DISABLE TRIGGER case_events_no_update;
UPDATE case_events SET kind = 'invited' WHERE kind = 'agency_invited';
UPDATE case_events SET kind = 'proposed' WHERE kind = 'agreement_proposed';
ALTER TABLE case_events ENABLE TRIGGER case_events_no_update;

-- Satisfaction: each party who had joined a case is asked once when it closes (settled, failed, referred,
-- withdrawn): a row with asked_at; the answer fills score (1-5) and comment once, never again.
CREATE TABLE case_feedback (
    case_id      uuid NOT NULL REFERENCES cases(id),
    party_id     uuid NOT NULL REFERENCES accounts(id),
    asked_via    text NOT NULL CHECK (asked_via IN ('ws','sms')),      -- the page's prompt, or one SMS
    asked_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    score        smallint CHECK (score BETWEEN 1 AND 5),
    comment      text CHECK (char_length(comment) <= 1000),
    answered_via text CHECK (answered_via IN ('ws','sms')),
    answered_at  timestamptz,
    PRIMARY KEY (case_id, party_id),
    CHECK ((score IS NULL) = (answered_at IS NULL))
);
CREATE INDEX case_feedback_pending ON case_feedback (party_id, asked_at) WHERE score IS NULL;

-- an answer stands: the one update allowed fills an unanswered row; nothing deletes (`helpline purge` may
-- blank a comment, like a message, with helpline.purge = 'on')
CREATE FUNCTION case_feedback_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND current_setting('helpline.purge', true) = 'on' THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.score IS NULL AND NEW.case_id = OLD.case_id AND NEW.party_id = OLD.party_id
       AND NEW.asked_via = OLD.asked_via AND NEW.asked_at = OLD.asked_at THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'case_feedback: an answer is given once and kept';
END $$;
CREATE TRIGGER case_feedback_answer_once BEFORE UPDATE OR DELETE ON case_feedback
    FOR EACH ROW EXECUTE FUNCTION case_feedback_once();

-- Report-ready: one row per question asked (answered or not), with what the reports group by; never the
-- party's name or phone. case_satisfaction_monthly counts them by month of closing, category and outcome.
CREATE VIEW case_satisfaction AS
    SELECT f.case_id, c.ref_no, c.category, c.grid_code, c.status AS outcome, c.mediator_id, c.closed_at,
           f.asked_via, f.asked_at, f.score, f.answered_via, f.answered_at,
           (c.overdue_since IS NOT NULL OR c.extended_at IS NOT NULL) AS followed_up
    FROM case_feedback f JOIN cases c ON c.id = f.case_id;

CREATE VIEW case_satisfaction_monthly AS
    SELECT date_trunc('month', closed_at) AS month, category, outcome,
           count(*) AS asked, count(score) AS answered, round(avg(score), 2) AS mean_score,
           count(*) FILTER (WHERE score = 1) AS score_1, count(*) FILTER (WHERE score = 2) AS score_2,
           count(*) FILTER (WHERE score = 3) AS score_3, count(*) FILTER (WHERE score = 4) AS score_4,
           count(*) FILTER (WHERE score = 5) AS score_5
    FROM case_satisfaction GROUP BY 1, 2, 3;
