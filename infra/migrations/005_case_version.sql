-- A case's version moves with every change that can alter who may write in its rooms: its own row
-- (every update sets version = version + 1) and, from here, its parties and agencies. A node keeps
-- cases in memory for chat and writes a message only if the case still has the version it checked
-- (mediation/store.py SEND_SQL), so a join or an invitation must bump it too.
CREATE FUNCTION case_membership_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE cases SET version = version + 1
    WHERE id = CASE WHEN TG_OP = 'DELETE' THEN OLD.case_id ELSE NEW.case_id END;
    RETURN NULL;
END $$;

CREATE TRIGGER case_parties_bump_version AFTER INSERT OR UPDATE OR DELETE ON case_parties
    FOR EACH ROW EXECUTE FUNCTION case_membership_changed();
CREATE TRIGGER case_agencies_bump_version AFTER INSERT OR UPDATE OR DELETE ON case_agencies
    FOR EACH ROW EXECUTE FUNCTION case_membership_changed();
