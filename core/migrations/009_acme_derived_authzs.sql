-- 009_acme_derived_authzs.sql: no authorization rows for an order whose
-- names are all pre-validated.
--
-- When an ACME endpoint skips challenges for names whose domain passed DCV
-- for the account's organization (skip_challenges_when_dcv_validated) and
-- every name of a newOrder is such a name, its authorizations carry nothing
-- the order does not know: each is valid from birth, has no challenges, its
-- identifier is the order's and its expiry the order's. Such an order is
-- stored alone (authzs_derived); its authorizations are derived from it
-- (URL authz/<order public id>.<index of the identifier>, core/store_acme.c)
-- instead of one acme_authzs row each (heap, three indexes, two foreign keys
-- per name, and an aggregate over them at every order read).
--
-- authzs_deactivated: the indexes of the derived authorizations the client
-- deactivated (RFC 8555 §7.5.2), NULL when none. It lives in the database,
-- so every instance sees it.
--
-- Orders stored before (and orders needing challenges, and replacing
-- orders) keep their rows: authzs_derived is false for them. Adding a
-- column with a constant default rewrites no table.
ALTER TABLE acme_orders
    ADD COLUMN authzs_derived boolean NOT NULL DEFAULT false,
    ADD COLUMN authzs_deactivated smallint[];
