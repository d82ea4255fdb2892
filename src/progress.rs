//! Progress of a long pass on a terminal: keys generated, records published, domains whose
//! signers switched. Hidden (draws nothing) when stderr is not a terminal, as from cron or a
//! systemd timer, and with `--log-format json`.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Below this many items a stage shows no bar: it ends before one would be read.
const SHOWN_FROM: u64 = 50;

/// Where a pass shows its progress.
pub struct Progress {
    bars: MultiProgress,
    shown: bool,
}

impl Progress {
    /// Progress drawn on stderr when `shown` (stderr is a terminal and logs are for people).
    pub fn new(shown: bool) -> Self {
        let target = match shown {
            true => ProgressDrawTarget::stderr(),
            false => ProgressDrawTarget::hidden(),
        };
        Self {
            bars: MultiProgress::with_draw_target(target),
            shown,
        }
    }

    /// Progress that draws nothing.
    pub fn hidden() -> Self {
        Self::new(false)
    }

    /// A bar for a stage of `total` items named `what` (e.g. "keys generated"); one that
    /// draws nothing when progress is hidden or the stage is short.
    pub fn stage(&self, what: &'static str, total: usize) -> ProgressBar {
        let total = total as u64;
        if !self.shown || total < SHOWN_FROM {
            return ProgressBar::hidden();
        }
        let bar = self.bars.add(ProgressBar::new(total));
        if let Ok(style) =
            ProgressStyle::with_template("{prefix:>20} [{bar:30}] {pos}/{len} ({per_sec}, {eta})")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(what);
        bar
    }
}
