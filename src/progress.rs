//! Progress for the long steps of training: one bar or spinner per step, on
//! stderr.
//!
//! A step's indicator is derived from the bar its caller passed in, so a
//! caller that wants silence (a library user, a unit test) passes
//! `ProgressBar::hidden()` and every step stays hidden; `rapport train`
//! passes a stderr bar, which indicatif hides by itself when stderr is not a
//! terminal, so piped output, tests and CI logs stay clean. Indicators redraw
//! at most a few times a second; callers update them per step, per boosting
//! round or per batch, never per row in a hot loop. Each clears itself when
//! finished or dropped.

use std::borrow::Cow;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressFinish, ProgressStyle};

/// How often a spinner redraws while its step runs.
const TICK: Duration = Duration::from_millis(120);

/// The parent of a command's steps when it has no bar of its own: it never
/// draws, and is hidden exactly when stderr is not a terminal.
pub fn root() -> ProgressBar {
    ProgressBar::new(0).with_finish(ProgressFinish::AndClear)
}

/// A spinner named `step` with the elapsed time, for a step whose length is
/// unknown (reading a file, fitting a regression); its message, empty at
/// first, can say which part runs. Hidden when `parent` is.
pub fn step(parent: &ProgressBar, step: impl Into<Cow<'static, str>>) -> ProgressBar {
    if parent.is_hidden() {
        return ProgressBar::hidden();
    }
    let spinner = ProgressBar::new_spinner()
        .with_style(
            ProgressStyle::with_template("{spinner} {prefix} {msg} ({elapsed})")
                .expect("the template is valid"),
        )
        .with_prefix(step)
        .with_finish(ProgressFinish::AndClear);
    spinner.enable_steady_tick(TICK);
    spinner
}

/// A bar of `len` units (boosting rounds, horizons, values of k) named
/// `step`; its message says which part of the step runs ("fold 2/5",
/// "k = 6"). Hidden when `parent` is.
pub fn counter(parent: &ProgressBar, step: impl Into<Cow<'static, str>>, len: u64) -> ProgressBar {
    if parent.is_hidden() {
        return ProgressBar::hidden();
    }
    ProgressBar::new(len)
        .with_style(
            ProgressStyle::with_template("{prefix:>26} [{bar:40}] {pos}/{len} {msg} ({elapsed})")
                .expect("the template is valid")
                .progress_chars("=> "),
        )
        .with_prefix(step)
        .with_finish(ProgressFinish::AndClear)
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn bar(message: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({eta})")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    bar.set_message(message);
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hidden_parent_hides_every_step() {
        let parent = ProgressBar::hidden();
        assert!(step(&parent, "reading").is_hidden());
        let bar = counter(&parent, "boosting", 10);
        assert!(bar.is_hidden());
        bar.inc(3);
        bar.finish_and_clear();
    }
}
