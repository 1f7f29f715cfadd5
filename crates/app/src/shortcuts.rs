//! Keyboard shortcuts, as one table: the keys that act ([`SHORTCUTS`]) and the overlay that
//! lists them (F1 or `?`) both read it, so the overlay cannot fall behind what the keys do.

use super::LatentAtlasApp;
use super::action::Action;
use latent_atlas_core::worker::RunState;

/// What a shortcut does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shortcut {
    RunPause,
    SaveRun,
    LoadRun,
    ExportAll,
    Reset,
    ResetView,
    Cooler,
    Warmer,
    Help,
    CloseHelp,
    Quit,
}

/// One key and what it does.
#[derive(Clone, Copy, Debug)]
pub struct Binding {
    pub modifiers: egui::Modifiers,
    pub key: egui::Key,
    pub shortcut: Shortcut,
    /// What the overlay says it does.
    pub what: &'static str,
}

const fn key(
    modifiers: egui::Modifiers,
    key: egui::Key,
    shortcut: Shortcut,
    what: &'static str,
) -> Binding {
    Binding {
        modifiers,
        key,
        shortcut,
        what,
    }
}

use egui::{Key, Modifiers};

/// Every keyboard shortcut of the window, in the order the overlay lists them.
pub const SHORTCUTS: &[Binding] = &[
    key(
        Modifiers::NONE,
        Key::Space,
        Shortcut::RunPause,
        "Train, pause, resume",
    ),
    key(
        Modifiers::COMMAND,
        Key::S,
        Shortcut::SaveRun,
        "Save the run",
    ),
    key(Modifiers::COMMAND, Key::O, Shortcut::LoadRun, "Load a run"),
    key(
        Modifiers::COMMAND,
        Key::E,
        Shortcut::ExportAll,
        "Export every view",
    ),
    key(
        Modifiers::COMMAND,
        Key::R,
        Shortcut::Reset,
        "Reset the model",
    ),
    key(
        Modifiers::NONE,
        Key::Home,
        Shortcut::ResetView,
        "Reset the plane's zoom and pan",
    ),
    key(
        Modifiers::NONE,
        Key::OpenBracket,
        Shortcut::Cooler,
        "Temperature down by 0.05",
    ),
    key(
        Modifiers::NONE,
        Key::CloseBracket,
        Shortcut::Warmer,
        "Temperature up by 0.05",
    ),
    key(
        Modifiers::NONE,
        Key::F1,
        Shortcut::Help,
        "Show or hide this list",
    ),
    key(
        Modifiers::NONE,
        Key::Questionmark,
        Shortcut::Help,
        "Show or hide this list",
    ),
    key(
        Modifiers::NONE,
        Key::Escape,
        Shortcut::CloseHelp,
        "Close this list",
    ),
    key(Modifiers::COMMAND, Key::Q, Shortcut::Quit, "Quit"),
];

/// What the mouse does in the latent plane (egui_plot's gestures and the plane's own), for the
/// overlay.
pub const MOUSE: &[(&str, &str)] = &[
    ("Scroll", "Zoom the plane"),
    ("Drag", "Pan the plane"),
    ("Double-click", "Reset the plane's zoom and pan"),
    (
        "Hover",
        "A sample's image and label (and its importance draws)",
    ),
    ("Click", "Pin a sample or point as an interpolation end"),
    ("Shift+drag", "Decode the point under the mouse"),
    ("Drop files", "Open a dataset or a saved run"),
];

/// How a binding reads on this platform: "Ctrl+S" (or "Cmd+S" on macOS), "F1", "?".
pub fn label(binding: &Binding, mac: bool) -> String {
    let mut text = String::new();
    if binding.modifiers.command {
        text.push_str(if mac { "Cmd+" } else { "Ctrl+" });
    }
    text.push_str(match binding.key {
        Key::OpenBracket => "[",
        Key::CloseBracket => "]",
        Key::Questionmark => "?",
        other => other.name(),
    });
    text
}

impl LatentAtlasApp {
    pub(super) fn shortcuts(&mut self, ctx: &egui::Context) -> Vec<Action> {
        let mut actions = Vec::new();
        if ctx.egui_wants_keyboard_input() {
            return actions;
        }
        // Escape is the list's only while it is open: elsewhere it closes egui's own popups.
        let open = self.state.shortcuts_open;
        let pressed: Vec<Shortcut> = ctx.input_mut(|i| {
            SHORTCUTS
                .iter()
                .filter(|b| b.shortcut != Shortcut::CloseHelp || open)
                .filter(|b| i.consume_key(b.modifiers, b.key))
                .map(|b| b.shortcut)
                .collect()
        });
        for shortcut in pressed {
            match shortcut {
                Shortcut::RunPause => actions.push(match self.state.main.state {
                    Some(RunState::Running) => Action::Pause,
                    _ => Action::Resume,
                }),
                Shortcut::SaveRun => actions.push(Action::SaveRun(None)),
                Shortcut::LoadRun => actions.push(Action::LoadRun(None)),
                Shortcut::ExportAll => actions.push(Action::ExportAll),
                Shortcut::Reset => actions.push(Action::Reset),
                Shortcut::ResetView => self.views.plane.reset = true,
                Shortcut::Cooler | Shortcut::Warmer => {
                    let step = if shortcut == Shortcut::Warmer {
                        0.05
                    } else {
                        -0.05
                    };
                    let t = self.state.settings.temperature + step;
                    self.state.set_temperature(t);
                }
                Shortcut::Help => self.state.shortcuts_open = !self.state.shortcuts_open,
                Shortcut::CloseHelp => self.state.shortcuts_open = false,
                Shortcut::Quit => ctx.send_viewport_cmd(egui::ViewportCommand::Close),
            }
        }
        actions
    }
}

/// The overlay listing [`SHORTCUTS`] and [`MOUSE`], while `open`; its close button clears it.
pub fn shortcuts_ui(ctx: &egui::Context, open: &mut bool) {
    let mac = ctx.os() == egui::os::OperatingSystem::Mac;
    egui::Window::new("Keyboard and mouse")
        .open(open)
        .collapsible(false)
        .resizable(false)
        .anchor(egui::Align2::CENTER_CENTER, egui::Vec2::ZERO)
        .show(ctx, |ui| {
            egui::Grid::new("shortcuts")
                .num_columns(2)
                .striped(true)
                .show(ui, |ui| {
                    let mut seen: Vec<Shortcut> = Vec::new();
                    for binding in SHORTCUTS {
                        if seen.contains(&binding.shortcut) {
                            continue;
                        }
                        seen.push(binding.shortcut);
                        let keys: Vec<String> = SHORTCUTS
                            .iter()
                            .filter(|b| b.shortcut == binding.shortcut)
                            .map(|b| label(b, mac))
                            .collect();
                        ui.strong(keys.join(" or "));
                        ui.label(binding.what);
                        ui.end_row();
                    }
                    for (gesture, what) in MOUSE {
                        ui.strong(*gesture);
                        ui.label(*what);
                        ui.end_row();
                    }
                });
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shortcut_has_one_meaning_per_key_and_reads_as_it_is_pressed() {
        for (i, a) in SHORTCUTS.iter().enumerate() {
            for b in &SHORTCUTS[i + 1..] {
                assert!(
                    !(a.key == b.key && a.modifiers == b.modifiers),
                    "{a:?} and {b:?} share a key"
                );
            }
        }
        let save = SHORTCUTS
            .iter()
            .find(|b| b.shortcut == Shortcut::SaveRun)
            .unwrap();
        assert_eq!(label(save, false), "Ctrl+S");
        assert_eq!(label(save, true), "Cmd+S");
        let help: Vec<String> = SHORTCUTS
            .iter()
            .filter(|b| b.shortcut == Shortcut::Help)
            .map(|b| label(b, false))
            .collect();
        assert_eq!(help, ["F1", "?"]);
    }
}
