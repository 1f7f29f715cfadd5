//! Device choice: `gpu` names a hardware adapter or fails clearly; `auto` falls back to the
//! CPU and says why.

use latent_atlas::backend::BackendChoice;

#[test]
fn cpu_is_flex_by_default() {
    let b = BackendChoice::Cpu.select().unwrap();
    assert_eq!(b.description, "CPU (flex)");
    assert!(b.notice.is_none());
}

#[test]
fn auto_takes_the_gpu_or_falls_back_with_a_reason() {
    match BackendChoice::Gpu.select() {
        Ok(gpu) => {
            assert!(gpu.description.starts_with("GPU: "), "{}", gpu.description);
            let auto = BackendChoice::Auto.select().unwrap();
            assert_eq!(auto.description, gpu.description);
        }
        Err(e) => {
            assert!(e.to_string().starts_with("no GPU available"), "{e}");
            let auto = BackendChoice::Auto.select().unwrap();
            assert!(auto.description.starts_with("CPU"), "{}", auto.description);
            let notice = auto.notice.expect("the fallback is announced");
            assert!(notice.contains("training on the CPU instead"), "{notice}");
        }
    }
}

#[test]
fn training_loops_run_on_a_pool_thread_of_their_own_with_the_callers_levers() {
    use latent_atlas::fused::{Levers, levers, with_levers};
    // Outside every pool (a test thread): the loop runs on a pool's thread, which stays the
    // same for the whole loop, and the levers narrowed here go with it.
    let caller = std::thread::current().id();
    let before = levers().linear;
    let narrowed = Levers {
        linear: false,
        ..levers()
    };
    let (index, thread, linear, nested) = with_levers(narrowed, || {
        latent_atlas::backend::on_compute_pool(|| {
            let thread = std::thread::current().id();
            // A second call from inside runs in place.
            let nested = latent_atlas::backend::on_compute_pool(|| std::thread::current().id());
            (
                rayon::current_thread_index(),
                thread,
                levers().linear,
                nested,
            )
        })
    });
    if rayon::current_num_threads() >= 2 {
        assert!(index.is_some(), "the loop runs on a pool's thread");
        assert_ne!(thread, caller);
    }
    assert_eq!(nested, thread, "a nested call stays where it is");
    assert!(!linear, "the caller's levers go with the loop");
    assert_eq!(levers().linear, before, "and the caller's own come back");
}
