-- 002_acme.sql: the ACME door's state (RFC 8555). Everything an ACME request
-- needs lives here, so several enrolld instances sharing one PostgreSQL serve
-- the same accounts, orders and nonces.

-- Nonces are stateless to hand out: base64url(random || issue time || HMAC)
-- under a key shared by every instance (acme_secrets). Using one inserts it
-- here; a second use hits the primary key and is badNonce, whichever
-- instance saw the first. UNLOGGED: a PostgreSQL crash forgets used nonces.
-- That would let a nonce be replayed within its hour, so the door keeps a
-- sentinel row ('~' || the first 16 hex digits of sha256(secret), expires
-- 'infinity') next to the used nonces: when crash recovery empties the table
-- the sentinel is gone too, the door refuses every nonce of that secret and
-- rotates it (core/store_acme.c, store_acme_nonce_key()).
CREATE UNLOGGED TABLE acme_nonces (
    nonce      text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX acme_nonces_expires_idx ON acme_nonces (expires_at);

-- Secrets shared by every instance (the nonce HMAC key).
CREATE TABLE acme_secrets (
    name       text PRIMARY KEY,
    value      bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- External account binding credentials, created by an administrator for an
-- organization or department on one ACME endpoint. The HMAC key is stored
-- because it must be used to verify; it is returned once at creation.
CREATE TABLE acme_eab_keys (
    id          bigserial PRIMARY KEY,
    kid         text NOT NULL UNIQUE,
    hmac_key    bytea NOT NULL CHECK (length(hmac_key) >= 32),
    endpoint_id bigint NOT NULL REFERENCES endpoints(id),
    org_id      bigint NOT NULL REFERENCES organizations(id),
    dept_id     bigint REFERENCES departments(id),
    created_by  bigint REFERENCES admins(id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    used_at     timestamptz,
    revoked_at  timestamptz
);

CREATE TABLE acme_accounts (
    id             bigserial PRIMARY KEY,
    endpoint_id    bigint NOT NULL REFERENCES endpoints(id),
    status         text NOT NULL DEFAULT 'valid'
        CHECK (status IN ('valid','deactivated','revoked')),
    -- RFC 7638 thumbprint of the account key, unique per endpoint
    key_thumbprint text NOT NULL,
    jwk            jsonb NOT NULL,
    contact        text[] NOT NULL DEFAULT '{}',
    tos_agreed     boolean NOT NULL DEFAULT false,
    org_id         bigint REFERENCES organizations(id),
    dept_id        bigint REFERENCES departments(id),
    eab_key_id     bigint REFERENCES acme_eab_keys(id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (endpoint_id, key_thumbprint)
);

CREATE TABLE acme_orders (
    id             bigserial PRIMARY KEY,
    -- random public identifier used in URLs (never the sequential id)
    public_id      text NOT NULL UNIQUE,
    account_id     bigint NOT NULL REFERENCES acme_accounts(id),
    status         text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending','ready','processing','valid','invalid')),
    -- [{"type":"dns","value":"example.com"}, ...]
    identifiers    jsonb NOT NULL,
    profile_id     bigint NOT NULL REFERENCES profiles(id),
    -- the certificate term chosen at newOrder (the profile's shortest, or
    -- the one the client's notAfter asked for)
    term_days      int NOT NULL CHECK (term_days > 0),
    -- RFC 9773: the certID of the certificate this order replaces, if any
    replaces       text,
    not_before     timestamptz,
    not_after      timestamptz,
    expires_at     timestamptz NOT NULL,
    error          jsonb,
    certificate_id bigint REFERENCES certificates(id),
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX acme_orders_account_idx ON acme_orders (account_id, id);
CREATE INDEX acme_orders_certificate_idx ON acme_orders (certificate_id)
    WHERE certificate_id IS NOT NULL;

CREATE TABLE acme_authzs (
    id          bigserial PRIMARY KEY,
    public_id   text NOT NULL UNIQUE,
    order_id    bigint NOT NULL REFERENCES acme_orders(id),
    account_id  bigint NOT NULL REFERENCES acme_accounts(id),
    status      text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending','valid','invalid','deactivated','expired','revoked')),
    id_type     text NOT NULL CHECK (id_type IN ('dns','ip')),
    id_value    text NOT NULL,
    wildcard    boolean NOT NULL DEFAULT false,
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX acme_authzs_order_idx ON acme_authzs (order_id);

CREATE TABLE acme_challenges (
    id           bigserial PRIMARY KEY,
    public_id    text NOT NULL UNIQUE,
    authz_id     bigint NOT NULL REFERENCES acme_authzs(id),
    type         text NOT NULL CHECK (type IN ('http-01','dns-01','tls-alpn-01')),
    token        text NOT NULL,
    status       text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending','processing','valid','invalid')),
    validated_at timestamptz,
    error        jsonb,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX acme_challenges_authz_idx ON acme_challenges (authz_id);
