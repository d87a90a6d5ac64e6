//! What the HTTP layer needs of its server: the settings, where requests go, and what it
//! answers itself (static mounts).

use crate::common::log::Level;
use crate::common::settings::Settings;
use crate::exchange::app::AppSide;
use crate::http::static_files::mounts::StaticFiles;

/// One server's settings and app side, shared by its connections.
pub struct ServerContext {
    /// Start-up settings.
    pub settings: Settings,
    /// Where requests, WebSocket handshakes, log lines and access lines go.
    pub app: Box<dyn AppSide>,
    /// `--static` mounts, their directories open.
    pub statics: Option<StaticFiles>,
}

impl ServerContext {
    /// The context for `settings`: opens the static mounts' directories (an error names
    /// the one that cannot be served).
    pub fn new(settings: Settings, app: Box<dyn AppSide>) -> Result<ServerContext, String> {
        let statics = StaticFiles::open(&settings.static_mounts)?;
        Ok(ServerContext {
            settings,
            app,
            statics,
        })
    }

    /// A line for the `uvicorn.error` logger.
    pub fn log(&self, level: Level, message: impl Into<String>) {
        self.app.log(level, message.into());
    }
}
