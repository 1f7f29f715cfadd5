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
