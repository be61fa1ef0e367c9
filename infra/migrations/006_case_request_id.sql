-- case.open may carry a request_id (chosen by the client): the same filer sending it again (an answer
-- lost on a bad connection) gets the case it already opened instead of a second one.
ALTER TABLE cases ADD COLUMN request_id text;
CREATE UNIQUE INDEX cases_filer_request ON cases (filer_id, request_id) WHERE request_id IS NOT NULL;
