//! Logging to stderr in the hclog JSON shape Terraform reads (`@level`, `@message`), so that
//! `TF_LOG` filters the provider's lines by level. stdout belongs to the plugin protocol.
//!
//! Only the provider's own events go below INFO. The AWS SDK traces whole HTTP bodies (an
//! ECR token among them), the Docker client and the gRPC server log requests that carry
//! registry credentials: their debug and trace events are never written.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Installs the logger: to stderr, or appended to the file `PLUGIN_LOG_FILE` names (Terraform
/// starts the provider several times per command). That variable is
/// then removed, because tf-provider would otherwise install a logger of its own that writes
/// every crate's trace events (ECR tokens among them) to the file. Call it before any other
/// thread exists.
pub fn init() {
    let file = std::env::var_os("PLUGIN_LOG_FILE");
    std::env::remove_var("PLUGIN_LOG_FILE");
    let open = |path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    };
    let writer = match file.map(open) {
        Some(Ok(file)) => BoxMakeWriter::new(std::sync::Mutex::new(file)),
        _ => BoxMakeWriter::new(std::io::stderr),
    };
    let level = level_from_env();
    let filter = Targets::new()
        .with_target("ecrmirror", level)
        .with_default(level.min(Level::INFO));
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .event_format(HcLog)
        .with_filter(filter);
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

/// The most verbose level `TF_LOG_PROVIDER` or `TF_LOG` asks for; `INFO` when neither does.
fn level_from_env() -> Level {
    let wanted = std::env::var("TF_LOG_PROVIDER")
        .or_else(|_| std::env::var("TF_LOG"))
        .unwrap_or_default()
        .to_ascii_uppercase();
    match wanted.as_str() {
        "TRACE" | "JSON" => Level::TRACE,
        "DEBUG" => Level::DEBUG,
        "WARN" => Level::WARN,
        "ERROR" => Level::ERROR,
        _ => Level::INFO,
    }
}

/// One JSON object a line: `{"@level":"debug","@message":"…","@module":"ecrmirror",…fields}`.
struct HcLog;

impl<S, N> FormatEvent<S, N> for HcLog
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = JsonFields::default();
        event.record(&mut fields);
        let mut line = serde_json::Map::new();
        line.insert(
            "@level".into(),
            event
                .metadata()
                .level()
                .as_str()
                .to_ascii_lowercase()
                .into(),
        );
        line.insert("@message".into(), fields.message.into());
        line.insert("@module".into(), "ecrmirror".into());
        if let Ok(now) =
            time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339)
        {
            line.insert("@timestamp".into(), now.into());
        }
        line.extend(fields.values);
        writeln!(writer, "{}", serde_json::Value::Object(line))
    }
}

#[derive(Default)]
struct JsonFields {
    message: String,
    values: serde_json::Map<String, serde_json::Value>,
}

impl Visit for JsonFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.values.insert(field.name().into(), value.into());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}
