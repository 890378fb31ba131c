//! A web server whose handler memoizes a slow query (one second) by its parameters.
//!
//! ```text
//! cargo run --example web --features tokio
//! curl 'http://127.0.0.1:3000/report?city=Paris&day=3'   # 1 s the first time, then instant
//! curl 'http://127.0.0.1:3000/stats'                     # how many queries really ran
//! ```
//!
//! Concurrent requests for one report run the query once; the others wait for it. Reports
//! survive a restart of the server (they are in `./.cache/tiered`, or `TIERED_DIR`), and an
//! edit of `load_report`'s body makes the next request run the new code.
//! `PORT` chooses the port (`0`: any free one; the line printed at start says which).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::Query;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Params {
    city: String,
    day: u32,
}

#[derive(Clone, Serialize, Deserialize)]
struct Report {
    city: String,
    day: u32,
    temperatures: Vec<f64>,
}

/// How many times the slow query really ran in this process.
static QUERIES: AtomicU64 = AtomicU64::new(0);

/// The slow query: a second of database time, memoized by its arguments for five minutes.
#[tiered::memoize(ttl = "5m", tags = ["reports"])]
async fn load_report(city: String, day: u32) -> Report {
    QUERIES.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let base = city.len() as f64 + f64::from(day);
    Report {
        temperatures: (0..24).map(|h| base + f64::from(h) / 10.0).collect(),
        city,
        day,
    }
}

async fn report(Query(p): Query<Params>) -> Json<Report> {
    Json(load_report(p.city, p.day).await)
}

async fn stats() -> Json<serde_json::Value> {
    let memo = load_report::stats();
    Json(serde_json::json!({
        "queries": QUERIES.load(Ordering::SeqCst),
        "hits": memo.hits,
        "misses": memo.misses,
    }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Ctrl-C commits the cache's batched writes before the server ends.
    #[cfg(unix)]
    tiered::flush_on_exit_signals()?;
    let port: u16 = std::env::var("PORT").map_or(Ok(3000), |p| p.parse())?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let app = Router::new()
        .route("/report", get(report))
        .route("/stats", get(stats));
    axum::serve(listener, app).await?;
    Ok(())
}
