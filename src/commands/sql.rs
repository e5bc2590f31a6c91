//! `vintagelake sql`: SQL over the vintages through the service's Flight SQL endpoint, one
//! statement from the command line or an interactive session.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use arrow::array::RecordBatch;
use arrow_flight::error::FlightError;
use arrow_flight::sql::client::FlightSqlServiceClient;
use futures::TryStreamExt;
use tonic::transport::Channel;

use super::Error;
use super::get::{FlightConnection, print_answer};

/// Options of `vintagelake sql`.
#[derive(Debug, clap::Args)]
pub struct SqlArgs {
    /// The statement (none: read statements from standard input, each ended by `;`; a prompt
    /// when it is a terminal).
    pub statement: Option<String>,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = ["table", "csv", "json", "parquet"])]
    pub format: String,
    /// Write to this file instead of standard output (required for parquet; one statement only).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub connect: FlightConnection,
}

pub async fn run(args: SqlArgs) -> Result<ExitCode, Error> {
    if args.format == "parquet" && args.out.is_none() {
        return Err(Error::Usage("--format parquet needs --out FILE".into()));
    }
    let mut client = FlightSqlServiceClient::new(args.connect.channel().await?);
    if let Some(token) = &args.connect.token {
        client.set_token(token.clone());
    }
    if let Some(statement) = &args.statement {
        let answer = execute(&mut client, statement).await?;
        print(&args, &answer)?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.out.is_some() {
        return Err(Error::Usage("--out takes one statement (give it as an argument)".into()));
    }
    // Interactive: statements end with `;`; an error is printed and the session goes on.
    let interactive = std::io::stdin().is_terminal();
    let prompt = |continued: bool| {
        if interactive {
            eprint!("{}", if continued { "      -> " } else { "vintagelake> " });
            let _ = std::io::stderr().flush();
        }
    };
    let mut failed = false;
    let mut pending = String::new();
    prompt(false);
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|source| Error::Read { what: "standard input".into(), source })?;
        pending.push_str(&line);
        pending.push('\n');
        while let Some(end) = statement_end(&pending) {
            let statement: String = pending.drain(..=end).collect();
            let statement = statement.trim().trim_end_matches(';').trim();
            if statement.is_empty() {
                continue;
            }
            match execute(&mut client, statement).await {
                Ok(answer) => print(&args, &answer)?,
                Err(e) => {
                    failed = true;
                    eprintln!("error: {e}");
                }
            }
        }
        prompt(!pending.trim().is_empty());
    }
    let rest = pending.trim().trim_end_matches(';').trim();
    if !rest.is_empty() {
        match execute(&mut client, rest).await {
            Ok(answer) => print(&args, &answer)?,
            Err(e) => {
                failed = true;
                eprintln!("error: {e}");
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// The byte index of the first `;` that ends a statement (not inside a quoted string or
/// identifier, nor in a `--` comment).
fn statement_end(text: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match (quote, c) {
            _ if comment => comment = c != '\n',
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '-') if chars.peek().is_some_and(|(_, n)| *n == '-') => comment = true,
            (None, ';') => return Some(i),
            _ => {}
        }
    }
    None
}

/// Runs one statement: its answer's batches.
async fn execute(client: &mut FlightSqlServiceClient<Channel>, statement: &str) -> Result<Answer, Error> {
    let failed = |e: FlightError| Error::Failed(sql_error(&e));
    let info = client.execute(statement.to_owned(), None).await.map_err(failed)?;
    let schema = std::sync::Arc::new(info.clone().try_decode_schema().map_err(|e| failed(FlightError::Arrow(e)))?);
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.ok_or_else(|| Error::Failed("an endpoint without a ticket".into()))?;
        let stream = client.do_get(ticket).await.map_err(failed)?;
        batches.extend(stream.try_collect::<Vec<_>>().await.map_err(|e| Error::Failed(e.to_string()))?);
    }
    Ok((schema, batches))
}

/// A statement's answer: its schema and batches.
type Answer = (arrow::datatypes::SchemaRef, Vec<RecordBatch>);

/// The server's message of a failed call, without the transport's wrapping.
fn sql_error(e: &FlightError) -> String {
    match e {
        FlightError::Tonic(status) => format!("{:?}: {}", status.code(), status.message()),
        other => other.to_string(),
    }
}

fn print(args: &SqlArgs, (schema, batches): &Answer) -> Result<(), Error> {
    print_answer(&args.format, args.out.as_deref(), schema.clone(), batches)
}

#[cfg(test)]
mod tests {
    use super::statement_end;

    #[test]
    fn statements_end_at_semicolons_outside_quotes_and_comments() {
        assert_eq!(statement_end("SELECT 1;"), Some(8));
        assert_eq!(statement_end("SELECT ';' -- a; b\n;"), Some(19));
        assert_eq!(statement_end("SELECT \"a;b\" FROM t"), None);
    }
}
