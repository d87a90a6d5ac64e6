//! What the HTTP layer needs of its server: the settings, and where requests go.

use crate::common::log::Level;
use crate::common::settings::Settings;
use crate::exchange::app::AppSide;

/// One server's settings and app side, shared by its connections.
pub struct ServerContext {
    /// Start-up settings.
    pub settings: Settings,
    /// Where requests, WebSocket handshakes, log lines and access lines go.
    pub app: Box<dyn AppSide>,
}

impl ServerContext {
    /// A line for the `uvicorn.error` logger.
    pub fn log(&self, level: Level, message: impl Into<String>) {
        self.app.log(level, message.into());
    }
}
