"""Fill a database with N subscribers and a year of DailyStat rows, set-based (no row loop).

python bench/gen_subscribers.py --database-url sqlite:////tmp/bench.db --n 1000000
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import date, timedelta

import sqlalchemy as sa

# Status mix of a real list: most confirmed, some pending, a few gone.
AGO = "strftime('%Y-%m-%d %H:%M:%f', 'now', '-' || ((END - g) * 20) || ' seconds')"
STATUS_SQL = (
    "CASE WHEN {g} % 20 = 0 THEN 'unsubscribed' WHEN {g} % 50 = 1 THEN 'bounced' "
    "WHEN {g} % 10 = 3 THEN 'pending' ELSE 'confirmed' END"
)


def generate(engine: sa.Engine, n: int, start: int = 1) -> None:
    """Insert subscribers start..start+n-1 in one statement."""
    end = start + n - 1
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(
                sa.text(f"""
                INSERT INTO subscriber (email, name, status, version, created_at, updated_at,
                                        confirmed_at, source, confirm_sent_count)
                SELECT 'reader' || g || '@example.com', 'Reader ' || g, {STATUS_SQL.format(g="g")},
                       1, now() - (({end} - g) * interval '20 seconds'), now(),
                       now() - (({end} - g) * interval '20 seconds'), 'import', 0
                FROM generate_series({start}, {end}) AS g
            """)
            )
        else:
            ago = AGO.replace("END", str(end))
            conn.execute(
                sa.text(f"""
                WITH RECURSIVE c(g) AS (
                    SELECT {start} UNION ALL SELECT g + 1 FROM c WHERE g < {end})
                INSERT INTO subscriber (email, name, status, version, created_at, updated_at,
                                        confirmed_at, source, confirm_sent_count)
                SELECT 'reader' || g || '@example.com', 'Reader ' || g, {STATUS_SQL.format(g="g")},
                       1, {ago}, strftime('%Y-%m-%d %H:%M:%f', 'now'), {ago},
                       'import', 0
                FROM c
            """)
            )
            conn.execute(sa.text("ANALYZE"))
    if engine.dialect.name == "postgresql":
        # What autovacuum does soon after a bulk insert: flush the trigram indexes' pending
        # lists (else every search reads them linearly) and refresh the planner's statistics.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE subscriber"))


def daily_stats(engine: sa.Engine, days: int = 365, seed: int = 7) -> None:
    """Write a year of plausible daily counts (a few thousand rows: a plain executemany)."""
    rng = random.Random(seed)
    today = date.today()
    rows = []
    for d in range(days):
        day = today - timedelta(days=d)
        new = rng.randint(200, 3000)
        rows += [
            {"day": day, "kind": "subscribed", "count": new},
            {"day": day, "kind": "confirmed", "count": int(new * rng.uniform(0.5, 0.9))},
            {"day": day, "kind": "unsubscribed", "count": rng.randint(10, 200)},
            {"day": day, "kind": "bounced", "count": rng.randint(0, 40)},
        ]
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM daily_stat"))
        conn.execute(
            sa.text("INSERT INTO daily_stat (day, kind, count) VALUES (:day, :kind, :count)"), rows
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--n", type=int, default=100_000)
    args = parser.parse_args()
    engine = sa.create_engine(args.database_url)
    with engine.connect() as conn:
        start = (conn.execute(sa.text("SELECT max(id) FROM subscriber")).scalar() or 0) + 1
    began = time.perf_counter()
    generate(engine, args.n, start)
    daily_stats(engine)
    print(f"{args.n} subscribers in {time.perf_counter() - began:.1f} s")


if __name__ == "__main__":
    main()
