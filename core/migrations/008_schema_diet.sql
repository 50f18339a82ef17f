-- 008_schema_diet.sql: cheaper rows for every ACME issuance, the same
-- integrity.
--
-- 1. Foreign keys from the rows every issuance writes to parents that are
--    never deleted become a guard on the parent.
--
--    A foreign key is checked per inserted row (and per UPDATE that sets the
--    column) by an after-trigger running, through SPI,
--    SELECT 1 FROM ONLY parent WHERE id = $1 FOR KEY SHARE: a heap lock on
--    the parent row and a WAL record for it, and, when another transaction
--    holds that lock too - every concurrent issuance references the same
--    organization, profile, endpoint and account - a new MultiXact. An ACME
--    issuance paid seven of them: its order (account, profile), each
--    authorization (account), its certificate (organization, department,
--    profile, endpoint) and the order's move to that certificate
--    (certificate_id).
--
--    Invariant, unchanged: every id stored in the columns below names an
--    existing row of the parent table. It holds because
--      a. rows of organizations, departments, profiles, endpoints, admins,
--         acme_accounts and certificates are never deleted: they are
--         deactivated (active = false, status 'deactivated'), revoked or
--         declined. Nothing in enrolld deletes them, and the triggers below
--         refuse DELETE and TRUNCATE on them with SQLSTATE 23503
--         (foreign_key_violation, what the foreign key answered to a DELETE
--         of a referenced row), whoever asks;
--      b. every writer of these columns stores an id it read from its parent
--         first, in the same request: the RA's facts query (organization,
--         department, profile, endpoint; ra_enroll() refuses a request whose
--         parent is not found), the ACME door's authenticated account and
--         the endpoint's profile, the certificate row the statement itself
--         inserts, the administrator of the bearer token. Since a committed
--         parent row never goes away (a.), the id stays valid.
--    Foreign keys whose parent IS deleted stay: retention deletes expired
--    orders, their authorizations and challenges (store_acme_retention_prune),
--    so acme_authzs.order_id and acme_challenges.authz_id keep theirs. So do
--    the foreign keys of the tables administrators write (departments,
--    admins, delegations, endpoints, EAB keys, accounts): not per issuance.
--
-- 2. Indexes that cost an entry per issuance:
--    * audit_log_at_idx: no query reads audit_log by "at" (the admin API
--      lists by id, core/store_audit.c); one entry per audit row, dropped.
--    * certificates_status_idx: nearly every row is 'issued', and a list of
--      the issued certificates reads the table in id order (primary key)
--      anyway; the index serves the rare statuses (held requests,
--      revoked). Partial: WHERE status <> 'issued'. An issued certificate
--      gets no entry; a status = 'requested' (or any other constant but
--      'issued') filter still uses it.
--
-- 3. The last single-column CHECKs of the two issuance tables become domains,
--    as migration 006 did for the value lists, for the same reason: a table
--    CHECK is read back from its node text (stringToNode), planned and
--    compiled for every INSERT or UPDATE statement; a domain's CHECK once per
--    backend (type cache). certificates.term_days and acme_orders.term_days
--    (> 0) become term_days, certificates.revocation_reason (0..10)
--    revocation_reason. A violation is still 23514; the protocol and JSON
--    show the base type (int). certificates keeps one table CHECK (status and
--    serial/DER together: two columns); acme_orders has none left, so the
--    order's UPDATE in the certificate INSERT checks nothing per statement.
--    Same two steps as 006: the columns change to a domain without a
--    constraint (binary coercible, no rewrite), then ALTER DOMAIN ADD
--    CONSTRAINT checks the stored rows.
--
-- Measured, ACME issuances at 4 concurrent flows (enrolld 4 workers), 4
-- alternating runs each, medians: certificate INSERT 267 -> 153 us, order
-- create 174 -> 115 us; WAL per issuance 31.9 -> 23.7 records; MultiXacts
-- per run of ~3,000 issuances 1,450-2,065 -> 2-4; PostgreSQL CPU per
-- issuance 1.77 -> 1.62 ms. callgrind, one backend, per order create plus
-- certificate INSERT: 1,448k -> 1,134k instructions with 1. and 2., 1,073k
-- with 3. too (each figure includes ~270k of the SQL-level EXECUTE itself).
CREATE FUNCTION never_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'rows of % are never deleted: deactivate them instead', TG_TABLE_NAME
        USING ERRCODE = 'foreign_key_violation';
END $$;

CREATE TRIGGER organizations_never_deleted BEFORE DELETE ON organizations
    FOR EACH ROW EXECUTE FUNCTION never_deleted();
CREATE TRIGGER organizations_never_truncated BEFORE TRUNCATE ON organizations
    FOR EACH STATEMENT EXECUTE FUNCTION never_deleted();
CREATE TRIGGER departments_never_deleted BEFORE DELETE ON departments
    FOR EACH ROW EXECUTE FUNCTION never_deleted();
CREATE TRIGGER departments_never_truncated BEFORE TRUNCATE ON departments
    FOR EACH STATEMENT EXECUTE FUNCTION never_deleted();
CREATE TRIGGER profiles_never_deleted BEFORE DELETE ON profiles
    FOR EACH ROW EXECUTE FUNCTION never_deleted();
CREATE TRIGGER profiles_never_truncated BEFORE TRUNCATE ON profiles
    FOR EACH STATEMENT EXECUTE FUNCTION never_deleted();
CREATE TRIGGER endpoints_never_deleted BEFORE DELETE ON endpoints
    FOR EACH ROW EXECUTE FUNCTION never_deleted();
CREATE TRIGGER endpoints_never_truncated BEFORE TRUNCATE ON endpoints
    FOR EACH STATEMENT EXECUTE FUNCTION never_deleted();
CREATE TRIGGER admins_never_deleted BEFORE DELETE ON admins
    FOR EACH ROW EXECUTE FUNCTION never_deleted();
CREATE TRIGGER admins_never_truncated BEFORE TRUNCATE ON admins
    FOR EACH STATEMENT EXECUTE FUNCTION never_deleted();
CREATE TRIGGER acme_accounts_never_deleted BEFORE DELETE ON acme_accounts
    FOR EACH ROW EXECUTE FUNCTION never_deleted();
CREATE TRIGGER acme_accounts_never_truncated BEFORE TRUNCATE ON acme_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION never_deleted();
CREATE TRIGGER certificates_never_deleted BEFORE DELETE ON certificates
    FOR EACH ROW EXECUTE FUNCTION never_deleted();
CREATE TRIGGER certificates_never_truncated BEFORE TRUNCATE ON certificates
    FOR EACH STATEMENT EXECUTE FUNCTION never_deleted();

ALTER TABLE certificates
    DROP CONSTRAINT certificates_org_id_fkey,
    DROP CONSTRAINT certificates_dept_id_fkey,
    DROP CONSTRAINT certificates_profile_id_fkey,
    DROP CONSTRAINT certificates_endpoint_id_fkey,
    DROP CONSTRAINT certificates_requester_admin_id_fkey,
    DROP CONSTRAINT certificates_approver_admin_id_fkey;
ALTER TABLE acme_orders
    DROP CONSTRAINT acme_orders_account_id_fkey,
    DROP CONSTRAINT acme_orders_profile_id_fkey,
    DROP CONSTRAINT acme_orders_certificate_id_fkey,
    DROP CONSTRAINT acme_orders_replaces_certificate_id_fkey;
ALTER TABLE acme_authzs
    DROP CONSTRAINT acme_authzs_account_id_fkey;

DROP INDEX audit_log_at_idx;
DROP INDEX certificates_status_idx;
CREATE INDEX certificates_status_idx ON certificates (status) WHERE status <> 'issued';

CREATE DOMAIN term_days AS int;
CREATE DOMAIN revocation_reason AS int;
ALTER TABLE certificates
    DROP CONSTRAINT certificates_term_days_check,
    DROP CONSTRAINT certificates_revocation_reason_check,
    ALTER COLUMN term_days TYPE term_days,
    ALTER COLUMN revocation_reason TYPE revocation_reason;
ALTER TABLE acme_orders
    DROP CONSTRAINT acme_orders_term_days_check,
    ALTER COLUMN term_days TYPE term_days;
ALTER DOMAIN term_days ADD CONSTRAINT term_days_check CHECK (VALUE > 0);
ALTER DOMAIN revocation_reason ADD CONSTRAINT revocation_reason_check
    CHECK (VALUE BETWEEN 0 AND 10);
