//! The crate's random generator, named so that users need not pick one.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A [`ChaCha8Rng`] seeded with `seed`: the generator the crate uses inside (shuffling,
/// splits, noise), portable (the same numbers on every platform and version of this crate)
/// and what [`crate::AutoencoderBuilder::build`] takes. Equal to
/// `rand_chacha::ChaCha8Rng::seed_from_u64(seed)` through the crate's own re-exports, so no
/// `rand` or `rand_chacha` of a matching version is needed in your `Cargo.toml`.
///
/// ```
/// use autoencoder::{seeded_rng, Activation, Autoencoder};
/// # fn main() -> autoencoder::Result<()> {
/// let ae = Autoencoder::<f32>::builder(8)
///     .latent(2, Activation::Relu)
///     .build(&mut seeded_rng(7))?;
/// let again = Autoencoder::<f32>::builder(8)
///     .latent(2, Activation::Relu)
///     .build(&mut seeded_rng(7))?;
/// assert_eq!(ae.layers()[0].weights(), again.layers()[0].weights());
/// # Ok(()) }
/// ```
pub fn seeded_rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}
