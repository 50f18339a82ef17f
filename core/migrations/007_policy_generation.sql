-- 007_policy_generation.sql: a generation counter for the policy facts, so
-- that every enrolld instance sharing the database may cache them.
--
-- The facts the policy decides on (core/facts.c: organizations, their
-- departments, domains and delegations, profiles, endpoints) change only
-- through the admin API, rarely; reading them in every newOrder and finalize
-- cost PostgreSQL more than the rest of those statements. Each instance now
-- keeps them in memory, tagged with the generation they were read at, and
-- every hot statement returns the current generation (one row read by
-- primary key): a request that sees another generation than its instance's
-- cache drops the cache and reloads before deciding.
--
-- Every INSERT, UPDATE, DELETE or TRUNCATE of those tables bumps the
-- generation, in the same transaction (statement-level triggers: one bump
-- per statement, whatever the number of rows), so a statement whose snapshot
-- sees a change also sees the bumped generation. A direct SQL change made
-- outside enrolld is honoured the same way. The counter starts at 1 on a
-- database holding data: nothing was cached before this migration.
CREATE TABLE policy_generation (
    one        boolean PRIMARY KEY DEFAULT true CHECK (one),
    generation bigint NOT NULL
);
INSERT INTO policy_generation (one, generation) VALUES (true, 1);

CREATE FUNCTION policy_generation_bump() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE policy_generation SET generation = generation + 1 WHERE one;
    RETURN NULL;
END
$$;

CREATE TRIGGER organizations_policy_generation
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON organizations
    FOR EACH STATEMENT EXECUTE FUNCTION policy_generation_bump();
CREATE TRIGGER departments_policy_generation
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON departments
    FOR EACH STATEMENT EXECUTE FUNCTION policy_generation_bump();
CREATE TRIGGER domains_policy_generation
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON domains
    FOR EACH STATEMENT EXECUTE FUNCTION policy_generation_bump();
CREATE TRIGGER delegations_policy_generation
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON delegations
    FOR EACH STATEMENT EXECUTE FUNCTION policy_generation_bump();
CREATE TRIGGER profiles_policy_generation
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON profiles
    FOR EACH STATEMENT EXECUTE FUNCTION policy_generation_bump();
CREATE TRIGGER endpoints_policy_generation
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON endpoints
    FOR EACH STATEMENT EXECUTE FUNCTION policy_generation_bump();
