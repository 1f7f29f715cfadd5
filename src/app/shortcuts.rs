//! Keyboard shortcuts: Space runs and pauses, Ctrl+S saves, Ctrl+O loads a run, Ctrl+E exports
//! all, Ctrl+R resets, Home resets the view, [ and ] change the temperature, Ctrl+Q quits.

use super::LatentAtlasApp;
use super::action::Action;
use crate::worker::RunState;

impl LatentAtlasApp {
    pub(super) fn shortcuts(&mut self, ctx: &egui::Context) -> Vec<Action> {
        let mut actions = Vec::new();
        if ctx.egui_wants_keyboard_input() {
            return actions;
        }
        let (space, save, export, reset, home, down, up) = ctx.input_mut(|i| {
            (
                i.consume_key(egui::Modifiers::NONE, egui::Key::Space),
                i.consume_key(egui::Modifiers::COMMAND, egui::Key::S),
                i.consume_key(egui::Modifiers::COMMAND, egui::Key::E),
                i.consume_key(egui::Modifiers::COMMAND, egui::Key::R),
                i.consume_key(egui::Modifiers::NONE, egui::Key::Home),
                i.consume_key(egui::Modifiers::NONE, egui::Key::OpenBracket),
                i.consume_key(egui::Modifiers::NONE, egui::Key::CloseBracket),
            )
        });
        if ctx.input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, egui::Key::O)) {
            actions.push(Action::LoadRun(None));
        }
        if ctx.input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, egui::Key::Q)) {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
        if space {
            actions.push(match self.state.main.state {
                Some(RunState::Running) => Action::Pause,
                _ => Action::Resume,
            });
        }
        if save {
            actions.push(Action::SaveRun(None));
        }
        if export {
            actions.push(Action::ExportAll);
        }
        if reset {
            actions.push(Action::Reset);
        }
        if home {
            self.views.plane.reset = true;
        }
        if down || up {
            let t = self.state.settings.temperature + if up { 0.05 } else { -0.05 };
            self.state.set_temperature(t);
        }
        actions
    }
}
