-- What a replay's database replays: the scenario it was created for (without its end, which a
-- resumed replay may extend), so that a resume with another scenario is refused instead of
-- mixing two markets or two models in one history. One row, in a replay's database only.
CREATE TABLE replay_runs (
    name        text        PRIMARY KEY,
    scenario    jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
