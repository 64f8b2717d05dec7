//! `demo-backend [ADDR]`: the echo backend of the demo and docker-compose (default 0.0.0.0:8000).

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "0.0.0.0:8000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("demo-backend echoing requests on {addr}");
    e2e::backend::serve(listener).await?;
    Ok(())
}
