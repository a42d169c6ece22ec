//! Store throughput benchmark (not a timed test): `cargo bench -p
//! latchkey-store-diesel --bench store`.
//!
//! For SQLite (a temporary file) and Postgres (a fresh test database on the
//! `DATABASE_URL` server), 16 concurrent tokio tasks run for `BENCH_SECONDS`
//! seconds (default 10; `LATCHKEY_BENCH_SECONDS` is read too, as
//! `cargo xtask bench` sets it) doing one operation through the store API:
//!
//! - `consume_code`: each call consumes a distinct, pre-created code and
//!   creates its refresh-token family and first refresh token;
//! - `rotate_refresh`: each task rotates its own chain, the new token
//!   becoming the next old one.
//!
//! One machine-readable line per result goes to stdout, exactly
//!
//! ```text
//! BENCH store backend=postgres op=consume_code ops_per_sec=1234.5 total=12345 seconds=10.0
//! ```
//!
//! followed by a human summary. Codes are pre-created in bulk with SQL (the
//! setup is not measured); their hashes are 32 ASCII digits, which the store
//! treats like any other 32-byte hash. Any failed operation makes the bench
//! exit non-zero: a throughput that includes errors means nothing.

use std::error::Error;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, RunQueryDsl};
use latchkey_store::{
    ClientOrigin, ClientRecord, CodeConsumption, CodeRedemption, FirstRefreshToken,
    IssuedAccessToken, NextRefreshToken, Rotation, SecretHash, Store, Timestamp, UserRecord,
};
use latchkey_store_diesel::PoolOptions;
use latchkey_store_diesel::testing::{TestDatabase, TestSqlite};

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// Concurrent tasks per measurement.
const TASKS: usize = 16;
/// Codes pre-created per second of measurement: well above what either
/// backend sustains on a small machine, so no task runs out.
const CODES_PER_SECOND: u64 = 25_000;
/// The bench's client and user (every code belongs to them).
const CLIENT_ID: &str = "bench-client";
const USER_ID: &str = "bench-user";

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_timestamp(1_800_000_000 + seconds).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The hash of pre-created code `index`: its number as 32 ASCII digits,
/// exactly as the setup SQL writes it.
fn code_hash(index: u64) -> BenchResult<SecretHash> {
    SecretHash::from_slice(format!("{index:032}").as_bytes())
        .ok_or_else(|| "a code hash must be 32 bytes".into())
}

/// How long each measurement runs.
fn bench_seconds() -> BenchResult<u64> {
    let value = std::env::var("BENCH_SECONDS")
        .or_else(|_| std::env::var("LATCHKEY_BENCH_SECONDS"))
        .unwrap_or_else(|_| "10".to_owned());
    let seconds: u64 = value
        .trim()
        .parse()
        .map_err(|_| format!("BENCH_SECONDS must be a whole number of seconds, not {value:?}"))?;
    if seconds == 0 {
        return Err("BENCH_SECONDS must be positive".into());
    }
    Ok(seconds)
}

/// Inserts codes `0..count` for the bench client and user in one
/// statement: `$1` is the count. Postgres and SQLite spell a number series
/// differently, hence two statements; the columns are the same.
const POSTGRES_SEED: &str = "\
INSERT INTO authorization_codes
       (code_hash, client_id, user_id, redirect_uri, code_challenge, scopes, resource,
        family_id, auth_time, issued_at, expires_at)
SELECT convert_to(lpad(i::text, 32, '0'), 'UTF8'), 'bench-client', 'bench-user',
       'http://127.0.0.1/callback', 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
       'mcp:read mcp:write', 'https://mcp.example.com/mcp', 'bench-family-' || i,
       1800000000, 1800000000, 1800003600
  FROM generate_series(0, $1 - 1) AS i";

const SQLITE_SEED: &str = "\
WITH RECURSIVE series(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM series WHERE i + 1 < ?1)
INSERT INTO authorization_codes
       (code_hash, client_id, user_id, redirect_uri, code_challenge, scopes, resource,
        family_id, auth_time, issued_at, expires_at)
SELECT CAST(printf('%032d', i) AS BLOB), 'bench-client', 'bench-user',
       'http://127.0.0.1/callback', 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
       'mcp:read mcp:write', 'https://mcp.example.com/mcp', 'bench-family-' || i,
       1800000000, 1800000000, 1800003600
  FROM series";

/// Stores the bench's client and user through the store.
async fn seed_parents(store: &dyn Store) -> BenchResult<()> {
    store
        .insert_client(&ClientRecord {
            client_id: CLIENT_ID.to_owned(),
            secret_hash: None,
            origin: ClientOrigin::Admin,
            metadata: serde_json::json!({ "client_name": "bench" }),
            created_at: at(0),
            expires_at: None,
        })
        .await?;
    store
        .insert_user(&UserRecord {
            user_id: USER_ID.to_owned(),
            email: "bench@example.org".to_owned(),
            password_hash: None,
            disabled: false,
            created_at: at(0),
        })
        .await?;
    Ok(())
}

fn redemption(index: u64) -> CodeRedemption {
    CodeRedemption {
        access_token: IssuedAccessToken {
            jti: format!("bench-jti-{index}"),
            expires_at: at(3600),
        },
        refresh_token: Some(FirstRefreshToken {
            token_hash: SecretHash::of(&format!("bench-refresh-{index}")),
            idle_expires_at: at(86_400),
            absolute_expires_at: at(2_592_000),
        }),
    }
}

/// One measurement's outcome.
struct Measured {
    operations: u64,
    elapsed: Duration,
}

/// Runs `TASKS` copies of `task` until `seconds` have passed and counts
/// their operations. Each task gets its number and the deadline.
async fn measure<F, Fut>(seconds: u64, task: F) -> BenchResult<Measured>
where
    F: Fn(usize, Instant) -> Fut,
    Fut: std::future::Future<Output = BenchResult<u64>> + Send + 'static,
{
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let handles: Vec<_> = (0..TASKS)
        .map(|number| tokio::spawn(task(number, deadline)))
        .collect();
    let mut operations = 0;
    for handle in handles {
        operations += handle.await??;
    }
    Ok(Measured {
        operations,
        elapsed: started.elapsed(),
    })
}

/// Consumes distinct codes: task `t` takes codes `t`, `t + 16`, `t + 32`, ….
async fn bench_consume(store: Arc<dyn Store>, seconds: u64, codes: u64) -> BenchResult<Measured> {
    measure(seconds, |number, deadline| {
        let store = Arc::clone(&store);
        async move {
            let mut done = 0_u64;
            let mut index = number as u64;
            while Instant::now() < deadline {
                if index >= codes {
                    return Err(format!("task {number} ran out of pre-created codes").into());
                }
                let outcome = store
                    .consume_code(&code_hash(index)?, &redemption(index), at(1))
                    .await?;
                if !matches!(outcome, CodeConsumption::Consumed(_)) {
                    return Err(format!("code {index} was not consumed: {outcome:?}").into());
                }
                done += 1;
                index += TASKS as u64;
            }
            Ok(done)
        }
    })
    .await
}

/// Rotates one chain per task, starting from the first refresh token of
/// the grant made by consuming code `codes + t`.
async fn bench_rotate(store: Arc<dyn Store>, seconds: u64, codes: u64) -> BenchResult<Measured> {
    measure(seconds, |number, deadline| {
        let store = Arc::clone(&store);
        async move {
            let start = codes + number as u64;
            let mut old = redemption(start)
                .refresh_token
                .map(|first| first.token_hash)
                .ok_or("the bench's redemptions issue refresh tokens")?;
            let mut done = 0_u64;
            while Instant::now() < deadline {
                let next = NextRefreshToken {
                    token_hash: SecretHash::of(&format!("bench-rotate-{number}-{done}")),
                    scopes: vec!["mcp:read".to_owned()],
                    idle_expires_at: at(86_400),
                    access_token: Some(IssuedAccessToken {
                        jti: format!("bench-rotate-jti-{number}-{done}"),
                        expires_at: at(3600),
                    }),
                };
                let outcome = store.rotate_refresh(&old, &next, at(2)).await?;
                if !matches!(outcome, Rotation::Rotated(_)) {
                    return Err(format!("task {number}: rotation {done} gave {outcome:?}").into());
                }
                old = next.token_hash;
                done += 1;
            }
            Ok(done)
        }
    })
    .await
}

/// Pre-creates the codes (and the grants the rotation chains start from)
/// and runs both measurements on `store`.
async fn run_backend(
    backend: &str,
    store: Arc<dyn Store>,
    seed: impl std::future::Future<Output = BenchResult<()>>,
    seconds: u64,
    codes: u64,
) -> BenchResult<Vec<(String, Measured)>> {
    seed_parents(&*store).await?;
    let seeding = Instant::now();
    seed.await?;
    let seeded = seeding.elapsed();
    // The rotation chains start from grants made from the codes after the
    // ones the consume measurement may use.
    for number in 0..TASKS as u64 {
        let index = codes + number;
        store
            .consume_code(&code_hash(index)?, &redemption(index), at(1))
            .await?;
    }
    let mut stderr = std::io::stderr().lock();
    writeln!(
        stderr,
        "{backend}: {} codes pre-created in {:.1}s; measuring {TASKS} tasks for {seconds}s per operation",
        codes + TASKS as u64,
        seeded.as_secs_f64()
    )?;
    drop(stderr);
    let consume = bench_consume(Arc::clone(&store), seconds, codes).await?;
    let rotate = bench_rotate(store, seconds, codes).await?;
    Ok(vec![
        ("consume_code".to_owned(), consume),
        ("rotate_refresh".to_owned(), rotate),
    ])
}

async fn run() -> BenchResult<()> {
    let seconds = bench_seconds()?;
    let codes = CODES_PER_SECOND * seconds;
    // Codes plus the chains' starting grants.
    let seed_count = i64::try_from(codes + TASKS as u64)?;
    let mut results = Vec::new();

    let sqlite = TestSqlite::create()?;
    let sqlite_store = sqlite.open(&PoolOptions::default()).await?;
    let sqlite_path = sqlite
        .path()
        .to_str()
        .ok_or("temporary path is not UTF-8")?
        .to_owned();
    let sqlite_seed = async move {
        let mut connection = diesel_async::sync_connection_wrapper::SyncConnectionWrapper::<
            diesel::SqliteConnection,
        >::establish(&sqlite_path)
        .await?;
        diesel::sql_query(SQLITE_SEED)
            .bind::<BigInt, _>(seed_count)
            .execute(&mut connection)
            .await?;
        Ok(())
    };
    for (op, measured) in run_backend(
        "sqlite",
        Arc::new(sqlite_store),
        sqlite_seed,
        seconds,
        codes,
    )
    .await?
    {
        results.push(("sqlite", op, measured));
    }

    let postgres = TestDatabase::create().await?;
    let postgres_store = postgres.connect(&PoolOptions::default()).await?;
    let postgres_url = postgres.url().to_owned();
    let postgres_seed = async move {
        let mut connection = diesel_async::AsyncPgConnection::establish(&postgres_url).await?;
        diesel::sql_query(POSTGRES_SEED)
            .bind::<BigInt, _>(seed_count)
            .execute(&mut connection)
            .await?;
        diesel::sql_query("ANALYZE")
            .execute(&mut connection)
            .await?;
        Ok(())
    };
    for (op, measured) in run_backend(
        "postgres",
        Arc::new(postgres_store),
        postgres_seed,
        seconds,
        codes,
    )
    .await?
    {
        results.push(("postgres", op, measured));
    }
    drop(postgres);

    let mut stdout = std::io::stdout().lock();
    for (backend, op, measured) in &results {
        let elapsed = measured.elapsed.as_secs_f64();
        let rate = measured.operations as f64 / elapsed;
        writeln!(
            stdout,
            "BENCH store backend={backend} op={op} ops_per_sec={rate:.1} total={} seconds={elapsed:.1}",
            measured.operations
        )?;
    }
    writeln!(stdout)?;
    writeln!(
        stdout,
        "Store throughput, {TASKS} concurrent tasks, {seconds}s each:"
    )?;
    for (backend, op, measured) in &results {
        let elapsed = measured.elapsed.as_secs_f64();
        let rate = measured.operations as f64 / elapsed;
        let latency_ms = elapsed * 1000.0 * TASKS as f64 / measured.operations.max(1) as f64;
        writeln!(
            stdout,
            "  {backend:<8} {op:<15} {rate:>10.1} ops/s  ({} ops, ~{latency_ms:.2} ms each)",
            measured.operations
        )?;
    }
    Ok(())
}

fn main() -> BenchResult<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run())
}
