"""Every SQL statement the project sends, named for what it answers. Parameterized only."""

# Migrations -------------------------------------------------------------------------------

ACQUIRE_ADVISORY_LOCK = "SELECT pg_advisory_lock(%s)"
RELEASE_ADVISORY_LOCK = "SELECT pg_advisory_unlock(%s)"

CREATE_SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""

SCHEMA_MIGRATIONS_EXISTS = "SELECT to_regclass('public.schema_migrations') IS NOT NULL AS exists"

SELECT_APPLIED_MIGRATIONS = (
    "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version"
)

RECORD_MIGRATION = "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)"

# Market bars ------------------------------------------------------------------------------

CREATE_STAGED_BARS = """
CREATE TEMP TABLE staged_bars (
    symbol text, ts timestamptz, open double precision, high double precision,
    low double precision, close double precision, volume double precision, source text
) ON COMMIT DROP
"""

COPY_STAGED_BARS = (
    "COPY staged_bars (symbol, ts, open, high, low, close, volume, source) FROM STDIN"
)

# Only rows whose values differ are rewritten, so loading the same input twice is a no-op;
# xmax = 0 tells a fresh insert from an update of an existing row.
UPSERT_STAGED_BARS = """
INSERT INTO market_bars AS b (symbol, ts, open, high, low, close, volume, source)
SELECT symbol, ts, open, high, low, close, volume, source FROM staged_bars
ON CONFLICT (symbol, ts) DO UPDATE
    SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low,
        close = EXCLUDED.close, volume = EXCLUDED.volume, source = EXCLUDED.source,
        ingested_at = now()
    WHERE (b.open, b.high, b.low, b.close, b.volume, b.source)
          IS DISTINCT FROM
          (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close, EXCLUDED.volume,
           EXCLUDED.source)
RETURNING (xmax = 0) AS inserted
"""

BAR_SUMMARY_BY_SYMBOL = """
SELECT symbol, count(*) AS bars, min(ts) AS first_ts, max(ts) AS last_ts,
       string_agg(DISTINCT source, ',') AS sources
FROM market_bars
GROUP BY symbol
ORDER BY symbol
"""

COUNT_BARS = "SELECT count(*) AS n FROM market_bars"

SELECT_BARS_FOR_SYMBOLS = """
SELECT symbol, ts, open, high, low, close, volume
FROM market_bars
WHERE symbol = ANY(%s)
  AND (%s::timestamptz IS NULL OR ts >= %s::timestamptz)
  AND (%s::timestamptz IS NULL OR ts <= %s::timestamptz)
ORDER BY symbol, ts
"""
