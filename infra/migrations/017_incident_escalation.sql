-- Why an escalated incident waits for a dispatcher (dispatch/lifecycle.py ESCALATION_REASONS), so that the
-- pages can say it truly without reading the event log; the incident view shows it while escalated.
ALTER TABLE incidents ADD COLUMN escalation_reason text;
UPDATE incidents i SET escalation_reason = (
    SELECT e.data->>'reason' FROM incident_events e WHERE e.incident_id = i.id AND e.kind = 'escalated'
    ORDER BY e.id DESC LIMIT 1)
WHERE i.status = 'escalated';
