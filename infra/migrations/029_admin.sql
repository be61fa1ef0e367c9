-- The admin console (issue 21): one-time password reset codes, and where an audit entry came from.

-- A code an admin issued for an account to set a new password with (POST /api/auth/reset). Only the
-- SHA-256 of the code is kept (it is 59 random bits, shown once to the admin); a code is used once
-- (used_at) and only until expires_at (auth.reset_code_ttl_s); issuing a new one drops the account's
-- earlier unused codes.
CREATE TABLE password_resets (
    id          bigserial PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    code_hash   text NOT NULL,
    issued_by   uuid REFERENCES accounts(id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX password_resets_open ON password_resets (account_id) WHERE used_at IS NULL;

-- the client address of the request or WebSocket an entry was written for (NULL where no client asked:
-- the CLI, the background sweeps, entries written before this migration)
ALTER TABLE audit_log ADD COLUMN address text;
CREATE INDEX audit_log_at ON audit_log (at);
