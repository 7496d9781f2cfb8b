//! [`Mpi`]: the [`Communicator`] over the system's MPI library (Open MPI, MPICH), through
//! the `mpi` crate (rsmpi). Behind the Cargo feature `mpi`.

use mpi::environment::Universe;
use mpi::topology::{Communicator as _, SimpleCommunicator};
use mpi::traits::CommunicatorCollectives;
use mpi::Threading;

use crate::distributed::Communicator;
use crate::error::{Error, Result};

/// The processes started by `mpirun` (MPI's world communicator) as a [`Communicator`].
///
/// [`Mpi::init`] initializes MPI once per process; dropping the value finalizes it, so
/// keep it alive (in `main`) until training and saving are done. MPI is initialized for
/// calls from one thread at a time (`MPI_THREAD_SERIALIZED`): the trainer calls it from
/// the thread that runs [`crate::Trainer::fit`].
///
/// ```no_run
/// use std::sync::Arc;
/// use autoencoder::distributed::{Communicator, Mpi};
/// use autoencoder::{Activation, Adam, Autoencoder, Trainer};
/// use ndarray::Array2;
/// use rand::SeedableRng;
/// # fn main() -> autoencoder::Result<()> {
/// let mpi = Arc::new(Mpi::init()?);
/// let x = Array2::from_shape_fn((256, 8), |(i, j)| ((i * j) % 5) as f32 / 5.0);
/// let mut ae = Autoencoder::<f32>::builder(8)
///     .latent(3, Activation::Tanh)
///     .build(&mut rand_chacha::ChaCha8Rng::seed_from_u64(1))?;
/// Trainer::new(Adam::new(1e-2))
///     .distributed(mpi.clone())
///     .fit(&mut ae, x.view(), None)?;
/// if mpi.rank() == 0 {
///     ae.save("model.safetensors")?; // one writer
/// }
/// # Ok(()) }
/// ```
pub struct Mpi {
    rank: usize,
    size: usize,
    _universe: Universe,
}

impl std::fmt::Debug for Mpi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mpi")
            .field("rank", &self.rank)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Mpi {
    /// Initializes MPI and returns the world communicator.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if MPI is already initialized in this process, or the
    /// library does not allow calls from more than its initializing thread.
    pub fn init() -> Result<Mpi> {
        let (universe, threading) = mpi::initialize_with_threading(Threading::Serialized)
            .ok_or_else(|| {
                Error::InvalidConfig("MPI is already initialized in this process".into())
            })?;
        if matches!(threading, Threading::Single | Threading::Funneled) {
            return Err(Error::InvalidConfig(format!(
                "the MPI library provides thread level {threading:?}, the trainer needs \
                 Serialized or above"
            )));
        }
        let world = universe.world();
        Ok(Mpi {
            rank: world.rank() as usize,
            size: world.size() as usize,
            _universe: universe,
        })
    }
}

impl Communicator for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn all_gather(&self, send: &[u8], recv: &mut [u8]) {
        SimpleCommunicator::world().all_gather_into(send, recv);
    }
}
