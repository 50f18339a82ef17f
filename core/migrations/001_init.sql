-- 001_init.sql: the product model (PRODUCT.md) as tables.
-- Applied once, in a transaction, by store_migrate(); never edit an applied
-- migration: add 002_*.sql instead.
--
-- Conventions:
--   * certificate types are the strings 'ssl', 'client', 'code_signing', 'device';
--   * a NULL dept_id means "the whole organization";
--   * actors in the audit log are 'admin:<id>', 'acme:<account id>', 'scep:<endpoint>',
--     'est:<endpoint>' or 'system'.

CREATE TABLE organizations (
    id                bigserial PRIMARY KEY,
    name              text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 256),
    street1           text, street2 text, street3 text,
    city              text, state text, postal_code text,
    country           text CHECK (country IS NULL OR country ~ '^[A-Z]{2}$'),
    validation_status text NOT NULL DEFAULT 'not_validated'
        CHECK (validation_status IN ('not_validated','pending','validated','expired','failed')),
    active            boolean NOT NULL DEFAULT true,
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE departments (
    id         bigserial PRIMARY KEY,
    org_id     bigint NOT NULL REFERENCES organizations(id),
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 256),
    active     boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, name),
    UNIQUE (org_id, id)
);

CREATE TABLE admins (
    id         bigserial PRIMARY KEY,
    login      text NOT NULL UNIQUE CHECK (length(login) BETWEEN 1 AND 128),
    email      text,
    role       text NOT NULL CHECK (role IN ('mrao','rao','drao')),
    org_id     bigint REFERENCES organizations(id),
    dept_id    bigint REFERENCES departments(id),
    -- certificate types this RAO/DRAO role covers; ignored for MRAO
    cert_types text[] NOT NULL DEFAULT '{}'
        CHECK (cert_types <@ ARRAY['ssl','client','code_signing','device']),
    -- privilege flags: 'manage_admins', 'approve_delegations', 'auto_approve_ssl', 'api_only'
    privileges text[] NOT NULL DEFAULT '{}'
        CHECK (privileges <@ ARRAY['manage_admins','approve_delegations','auto_approve_ssl','api_only']),
    active     boolean NOT NULL DEFAULT true,
    created_by bigint REFERENCES admins(id),
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((role = 'mrao' AND org_id IS NULL AND dept_id IS NULL)
        OR (role = 'rao'  AND org_id IS NOT NULL AND dept_id IS NULL)
        OR (role = 'drao' AND org_id IS NOT NULL AND dept_id IS NOT NULL)),
    FOREIGN KEY (org_id, dept_id) REFERENCES departments(org_id, id)
);

-- Bearer tokens: only the SHA-256 of the token is stored.
CREATE TABLE admin_tokens (
    id           bigserial PRIMARY KEY,
    admin_id     bigint NOT NULL REFERENCES admins(id),
    token_hash   bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    description  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);

CREATE TABLE domains (
    id               bigserial PRIMARY KEY,
    -- lower-case, A-label (punycode), no trailing dot, no wildcard; or an IP
    -- address in canonical text form (IPv6 has ':'), delegated for IP SANs
    name             text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9:]([a-z0-9.:-]*[a-z0-9:])?$'),
    description      text,
    active           boolean NOT NULL DEFAULT true,
    dcv_status       text NOT NULL DEFAULT 'not_started'
        CHECK (dcv_status IN ('not_started','submitted','validated','expired')),
    dcv_method       text CHECK (dcv_method IS NULL OR dcv_method IN ('email','http','dns','manual')),
    dcv_validated_at timestamptz,
    dcv_expires_at   timestamptz,
    created_by       bigint REFERENCES admins(id),
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- A domain delegated to an organization (dept_id NULL: all its departments) or
-- to one department, for some certificate types.
CREATE TABLE delegations (
    id           bigserial PRIMARY KEY,
    domain_id    bigint NOT NULL REFERENCES domains(id),
    org_id       bigint NOT NULL REFERENCES organizations(id),
    dept_id      bigint REFERENCES departments(id),
    cert_types   text[] NOT NULL
        CHECK (cardinality(cert_types) > 0 AND cert_types <@ ARRAY['ssl','client','code_signing','device']),
    state        text NOT NULL CHECK (state IN ('requested','approved')),
    requested_by bigint REFERENCES admins(id),
    approved_by  bigint REFERENCES admins(id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    approved_at  timestamptz,
    UNIQUE NULLS NOT DISTINCT (domain_id, org_id, dept_id),
    FOREIGN KEY (org_id, dept_id) REFERENCES departments(org_id, id)
);

CREATE TABLE profiles (
    id                    bigserial PRIMARY KEY,
    name                  text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 128),
    description           text,
    cert_type             text NOT NULL CHECK (cert_type IN ('ssl','client','code_signing','device')),
    ca_backend            text NOT NULL DEFAULT 'private' CHECK (ca_backend IN ('private')),
    terms_days            int[] NOT NULL CHECK (cardinality(terms_days) > 0),
    -- 'rsa2048','rsa3072','rsa4096','p256','p384','p521'
    key_types             text[] NOT NULL CHECK (cardinality(key_types) > 0
        AND key_types <@ ARRAY['rsa2048','rsa3072','rsa4096','p256','p384','p521']),
    -- 'digitalSignature','keyEncipherment','keyAgreement','nonRepudiation'
    key_usage             text[] NOT NULL DEFAULT '{digitalSignature}',
    -- 'serverAuth','clientAuth','codeSigning','emailProtection'
    ext_key_usage         text[] NOT NULL DEFAULT '{}',
    requires_approval     boolean NOT NULL DEFAULT false,
    allow_wildcards       boolean NOT NULL DEFAULT false,
    require_dcv           boolean NOT NULL DEFAULT false,
    require_org_validated boolean NOT NULL DEFAULT false,
    include_address       boolean NOT NULL DEFAULT false,   -- L / ST / C from the organization
    -- organizations that may use the profile; NULL: every organization
    allowed_org_ids       bigint[],
    active                boolean NOT NULL DEFAULT true,
    created_at            timestamptz NOT NULL DEFAULT now()
);

-- Protocol doors (ACME, SCEP, EST endpoints) bound to an org/department.
CREATE TABLE endpoints (
    id                 bigserial PRIMARY KEY,
    protocol           text NOT NULL CHECK (protocol IN ('acme','scep','est')),
    name               text NOT NULL CHECK (name ~ '^[a-zA-Z0-9_-]{1,64}$'),
    org_id             bigint REFERENCES organizations(id),
    dept_id            bigint REFERENCES departments(id),
    default_profile_id bigint NOT NULL REFERENCES profiles(id),
    profile_ids        bigint[] NOT NULL,
    settings           jsonb NOT NULL DEFAULT '{}',
    active             boolean NOT NULL DEFAULT true,
    created_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (protocol, name)
);

-- One row per request through its whole life.
CREATE TABLE certificates (
    id                bigserial PRIMARY KEY,
    status            text NOT NULL
        CHECK (status IN ('requested','approved','declined','issued','revoked','expired')),
    org_id            bigint NOT NULL REFERENCES organizations(id),
    dept_id           bigint REFERENCES departments(id),
    profile_id        bigint NOT NULL REFERENCES profiles(id),
    endpoint_id       bigint REFERENCES endpoints(id),
    protocol          text NOT NULL CHECK (protocol IN ('admin','acme','scep','est')),
    requester         text NOT NULL,
    requester_admin_id bigint REFERENCES admins(id),
    approver_admin_id bigint REFERENCES admins(id),
    csr_der           bytea NOT NULL,
    common_name       text,
    -- typed names: 'dns:www.example.com', 'ip:192.0.2.1', 'email:a@example.com'
    names             text[] NOT NULL DEFAULT '{}',
    key_type          text NOT NULL,
    term_days         int NOT NULL CHECK (term_days > 0),
    -- upper-case hex, no leading zeros; unique across all issuing CAs of this RA
    serial            text UNIQUE,
    issuer            text,
    not_before        timestamptz,
    not_after         timestamptz,
    cert_der          bytea,
    revoked_at        timestamptz,
    revocation_reason int CHECK (revocation_reason IS NULL OR revocation_reason BETWEEN 0 AND 10),
    decline_reason    text,
    idempotency_key   text UNIQUE,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (status NOT IN ('issued','revoked','expired') OR (serial IS NOT NULL AND cert_der IS NOT NULL))
);
CREATE INDEX certificates_status_idx ON certificates (status);
CREATE INDEX certificates_org_idx ON certificates (org_id, dept_id);
CREATE INDEX certificates_not_after_idx ON certificates (not_after);
CREATE INDEX certificates_revoked_idx ON certificates (issuer) WHERE status = 'revoked';

-- Append-only: UPDATE, DELETE and TRUNCATE are refused by triggers.
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    action      text NOT NULL,
    object_type text,
    object_id   bigint,
    org_id      bigint,
    dept_id     bigint,
    outcome     text NOT NULL DEFAULT 'ok' CHECK (outcome IN ('ok','denied','held','error')),
    reason      text,
    details     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at_idx ON audit_log (at);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- CRL numbers per issuing CA (RFC 5280 5.2.3: monotonically increasing).
CREATE TABLE crl_state (
    issuer     text PRIMARY KEY,
    crl_number bigint NOT NULL DEFAULT 0,
    crl_der    bytea,
    this_update timestamptz,
    next_update timestamptz
);
