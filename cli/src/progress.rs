//! A spinner on standard error while a task runs, only on a terminal: nothing on a pipe or in CI logs.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const FRAMES: &[&str] = &["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/// A spinner with a message; a no-op when standard error is not a terminal.
pub struct Progress {
    message: Option<Arc<Mutex<String>>>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Starts a spinner when standard error is a terminal (and `PRFIX_PROGRESS` is not `0`).
    pub fn start(message: &str) -> Self {
        let enabled = std::io::stderr().is_terminal() && std::env::var("PRFIX_PROGRESS").as_deref() != Ok("0");
        if !enabled {
            return Self { message: None, ticker: None };
        }
        let shared = Arc::new(Mutex::new(message.to_owned()));
        let text = shared.clone();
        let ticker = tokio::spawn(async move {
            let mut frame = 0usize;
            loop {
                {
                    let line = text.lock().map(|t| t.clone()).unwrap_or_default();
                    let mut err = std::io::stderr().lock();
                    let _ = write!(err, "\r\x1b[2K{} {line}", FRAMES[frame % FRAMES.len()]);
                    let _ = err.flush();
                }
                frame += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Self { message: Some(shared), ticker: Some(ticker) }
    }

    /// Changes the message.
    pub fn set(&self, message: impl Into<String>) {
        if let Some(shared) = &self.message
            && let Ok(mut text) = shared.lock()
        {
            *text = message.into();
        }
    }

    /// Prints `line` on standard error above the spinner, where it stays (a warning the user should
    /// still see when the spinner is gone); nothing when there is no spinner.
    pub fn keep(&self, line: &str) {
        if self.message.is_some() {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "\r\x1b[2K{line}");
            let _ = err.flush();
        }
    }

    /// Stops and clears the line.
    pub fn finish(mut self) {
        self.clear();
    }

    fn clear(&mut self) {
        if let Some(ticker) = self.ticker.take() {
            ticker.abort();
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}
