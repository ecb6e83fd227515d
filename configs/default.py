"""python main.py --config=configs/default.py --workdir=/tmp/fno_default

Default config: the released FNO recipe for 1D Burgers (Li et al., ICLR 2021), in mesh mode.

Every mode file imports this and changes a few fields. Any field can be overridden on the
command line, e.g. ``--config.batch_size=40 --config.data.resolution=512``.
"""

import ml_collections
from ml_collections import config_dict

from fno import registry


def get_config() -> ml_collections.ConfigDict:
    """The released-code recipe: Adam 1e-3, coupled weight decay 1e-4, lr halved every 50
    epochs, 500 epochs, batch 20, 1000 train / 200 test samples at s = 1024."""
    config = ml_collections.ConfigDict()

    # Execution mode: basic | scan | pmap | pmap_scan | mesh | mesh_scan (docs/modes.md).
    config.mode = "mesh"
    # Mesh modes only: the device mesh, one size per named axis; -1 means "the rest of the
    # devices". A 'data' axis (splits the batch) is required, e.g. (-1, 2) with
    # ("data", "model") for 2-way model parallelism.
    config.mesh_shape = (-1,)
    config.mesh_axes = ("data",)
    # Mesh axis that shards the channels (model.width) of parameters, Adam moments and
    # activations, e.g. "model"; "" replicates the model.
    config.model_sharding = ""
    # Mesh axis that shards the grid axis (data.resolution) of batches and activations;
    # "" keeps whole grids on each device. Pair it with model.spectral_impl = "dft": the FFT
    # path re-gathers the grid around every FFT (benchmarks/results/memory.json).
    config.spatial_sharding = ""
    # Seed for parameter initialisation and the data order.
    config.seed = 0
    # Global batch size, summed over all devices and processes.
    config.batch_size = 20
    # K: training steps fused into one compiled call by the scan modes (ignored otherwise).
    config.steps_per_call = 10
    # Training length in epochs over the training split ...
    config.num_epochs = 500
    # ... unless this is > 0, in which case it is the number of steps.
    config.num_train_steps = -1

    # Optimiser: Adam with L2 weight decay added to the gradient (PyTorch Adam's
    # weight_decay, not AdamW), lr multiplied by lr_decay_factor every lr_decay_epochs.
    config.learning_rate = 1e-3
    config.weight_decay = 1e-4
    # How the per-sample relative L2 errors of a batch become the loss: "mean" (flax's
    # examples, neuraloperator's LpLoss default) or "sum" (the released FNO scripts'
    # LpLoss(size_average=False)). Adam ignores the loss's scale but not its ratio to the
    # coupled weight decay: "sum" weighs the decay batch_size times less.
    config.loss_reduction = "mean"
    config.lr_decay_epochs = 50
    config.lr_decay_factor = 0.5

    # Reporting: train metrics every log_every_steps, evaluation every eval_every_steps,
    # checkpoints every checkpoint_every_steps (all also at the end of training).
    config.log_every_steps = 100
    config.eval_every_steps = 5000
    config.checkpoint_every_steps = 1000
    # Checkpoints kept on disk (the newest ones).
    config.keep_checkpoints = 3
    # A step with a non-finite loss or gradient never changes the parameters. By default the
    # run then stops with an error naming the step; True skips such steps (counted in the
    # metrics as nonfinite_steps) and carries on.
    config.skip_nonfinite_steps = False
    # Test samples drawn in the prediction-vs-truth figure written at each evaluation.
    config.num_plot_samples = 4

    config.data = data = ml_collections.ConfigDict()
    # The problem (fno.registry.PROBLEMS): "burgers", "darcy" or "navier_stokes" (generated when
    # data.dir is empty or missing), or "file" (your own data in data.dir).
    data.name = "burgers"
    # Dataset: a generated directory (created with the `generate` settings below if absent),
    # an original FNO .mat file, or an .npz/.h5 file with input_key/output_key arrays.
    # Empty: a directory under $FNO_DATA_DIR (default ~/.cache/fno) named after `generate`.
    data.dir = ""
    data.input_key = "a"
    data.output_key = "u"
    # Training split: the first num_train samples; test split: the last num_test samples.
    # None (the default): 1000 and 200, or for a smaller dataset a sixth of it for testing and
    # the rest for training.
    data.num_train = config_dict.placeholder(int)
    data.num_test = config_dict.placeholder(int)
    # Training resolution s: the file's grid subsampled by an integer factor ([:, ::sub]).
    data.resolution = 1024
    # Extra test resolutions for zero-shot super-resolution, e.g. (2048, 4096); each must be a
    # subgrid of the data's. None (the default): every power-of-two subgrid of the data finer
    # than data.resolution (2048, 4096, 8192 for the default data), () for none.
    data.eval_resolutions = config_dict.placeholder(tuple)
    # Time-dependent problems (docs/time.md): samples are windows of trajectories, the
    # input_steps snapshots from first_step on and the output_steps after them, each served
    # as channels. None (the default): a steady problem (inputs -> outputs as stored). The
    # trajectories are the output array (data.output_key; a generated directory's output),
    # laid out [N, *grid, T] (time_axis "last") or [N, T, *grid] ("first"), either with a
    # trailing channel axis.
    data.input_steps = config_dict.placeholder(int)
    data.output_steps = config_dict.placeholder(int)
    data.first_step = 0
    data.time_axis = "last"
    # Point-wise Gaussian normaliser of inputs and outputs, fitted on the training split and
    # saved with the checkpoint (the released Darcy code uses one; its Burgers code does not).
    data.normalize = False
    # Settings for generating the dataset when data.dir does not exist yet: the settings of
    # every problem (fno.registry.PROBLEMS), each following data.name to that problem's
    # default until it is set, so --config.data.name=darcy alone switches them too; setting
    # one the chosen problem does not have is an error. Each setting is its generator's
    # keyword argument (fno.data.burgers, fno.data.darcy, fno.data.navier_stokes; the defaults
    # are in fno.registry.PROBLEMS and docs/data.md).
    data.generate = registry.generate_config(data.get_ref("name"))

    config.model = model = ml_collections.ConfigDict()
    # The model (fno.registry.MODELS): "fno1d", "fno2d" or "fno3d"; its grid rank must match
    # the data.
    model.name = "fno1d"
    model.width = 64
    model.modes = 16
    # Input and output channels: None (the default) takes them from the data, whose inputs and
    # outputs are [N, *grid] (one channel) or [N, *grid, C]; a value that contradicts the data
    # is an error.
    model.in_channels = config_dict.placeholder(int)
    model.out_channels = config_dict.placeholder(int)
    model.num_layers = 4
    model.activation = "gelu"
    model.projection_width = 128
    # Spectral convolution: "fft", "dft" (truncated-DFT matmuls) or "auto" (by resolution).
    model.spectral_impl = "auto"
    # Spectral weights drawn "uniform" (the released scripts) or "normal" (neuraloperator).
    model.spectral_init = "uniform"
    # Time-dependent data: "autoregressive" (the model maps input_steps snapshots to the next
    # one, rolled out output_steps times, the loss summed over steps: the released
    # fourier_2d_time.py), "space_time" (a model with a time axis, FNO-3D: the released
    # fourier_3d.py) or "direct" (all output snapshots at once as channels). None: space_time
    # for a model with one more grid axis than the data, else autoregressive.
    model.time_scheme = config_dict.placeholder(str)
    # The autoregressive rollout: "scan" (lax.scan in the compiled step) or "unrolled" (a
    # Python loop traced step by step; for comparison, benchmarks/rollout_timing.py).
    model.rollout = "scan"
    # FNO-3D: zero cells appended to the time axis inside the model (the released recipe: 6).
    model.time_padding = 0
    # Compute dtype of activations and matmuls: "float32" or "bfloat16" (mixed precision:
    # parameters, Adam state and the loss stay float32). bfloat16 is for GPUs and TPUs; on
    # CPU it is slower than float32 (docs/performance.md).
    model.dtype = "float32"
    return config
