//! Decoded images on screen: grids of grey or colour images to egui textures, kept until their
//! content changes.

use egui::{Color32, ColorImage, TextureHandle, TextureOptions};

/// A grid of images (values in `[0, 1]`, grey or RGB) as one colour image with 1-pixel gaps.
pub fn grid(images: &[Vec<f32>], width: usize, height: usize, cols: usize) -> ColorImage {
    let cols = cols.max(1);
    let rows = images.len().div_ceil(cols).max(1);
    let (w, h) = (cols * (width + 1) + 1, rows * (height + 1) + 1);
    let mut pixels = vec![Color32::from_gray(90); w * h];
    for (i, img) in images.iter().enumerate() {
        let (x0, y0) = (1 + (i % cols) * (width + 1), 1 + (i / cols) * (height + 1));
        for y in 0..height {
            for x in 0..width {
                let [r, g, b] = latent_atlas_core::colour::rgb_at(img, width, height, x, y);
                pixels[(y0 + y) * w + x0 + x] = Color32::from_rgb(r, g, b);
            }
        }
    }
    ColorImage::new([w, h], pixels)
}

/// A texture whose content is rebuilt only when its key changes.
pub struct CachedTexture<K> {
    name: &'static str,
    options: TextureOptions,
    key: Option<K>,
    texture: Option<TextureHandle>,
}

impl<K: PartialEq> CachedTexture<K> {
    /// An empty cache; `name` labels the texture for debugging.
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            options: TextureOptions::NEAREST,
            key: None,
            texture: None,
        }
    }

    /// An empty cache for a texture sampled bilinearly (smooth fields).
    pub fn linear(name: &'static str) -> Self {
        Self {
            options: TextureOptions::LINEAR,
            ..Self::new(name)
        }
    }

    /// The texture for `key`, building it with `make` when the key changed.
    pub fn get(
        &mut self,
        ctx: &egui::Context,
        key: K,
        make: impl FnOnce() -> ColorImage,
    ) -> &TextureHandle {
        if self.key.as_ref() != Some(&key) || self.texture.is_none() {
            let image = make();
            match &mut self.texture {
                Some(t) => t.set(image, self.options),
                None => self.texture = Some(ctx.load_texture(self.name, image, self.options)),
            }
            self.key = Some(key);
        }
        self.texture.as_ref().expect("set above")
    }

    /// Forgets the content, so the next `get` rebuilds it.
    pub fn invalidate(&mut self) {
        self.key = None;
    }
}
