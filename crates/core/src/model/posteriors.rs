//! What the plane draws of a batch: each sample's posterior, or its code as a point.

use burn::tensor::Tensor;

/// A batch of posteriors as the plane draws them.
pub struct Posteriors {
    /// Where each sample sits in the prior's space `[batch, latent]`: mu, the code, or F(E(x)).
    pub position: Tensor<2>,
    /// Standard deviation per dimension `[batch, latent]`: sigma, zero for codes, sigma1 for the
    /// f-VAE (in the pre-flow space).
    pub sigma: Tensor<2>,
    /// The f-VAE's centres E(x) in the pre-flow space.
    pub pre_flow: Option<Tensor<2>>,
}

impl Posteriors {
    /// Codes as posteriors: each a point (zero sigma).
    pub fn of_codes(z: Tensor<2>) -> Self {
        Posteriors {
            sigma: z.zeros_like(),
            position: z,
            pre_flow: None,
        }
    }
}
