"""python main.py --config=configs/default.py --workdir=/tmp/fno_default

Default config: the released FNO recipe for 1D Burgers (Li et al., ICLR 2021), in mesh mode.

Every mode file imports this and changes a few fields. Any field can be overridden on the
command line, e.g. ``--config.batch_size=40 --config.data.resolution=512``.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    """The released-code recipe: Adam 1e-3, coupled weight decay 1e-4, lr halved every 50
    epochs, 500 epochs, batch 20, 1000 train / 200 test samples at s = 1024."""
    config = ml_collections.ConfigDict()

    # Execution mode: basic | scan | pmap | pmap_scan | mesh | mesh_scan (README, "Modes").
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
    # Dataset: a generated directory (created with the `generate` settings below if absent),
    # an original FNO .mat file, or an .npz/.h5 file with input_key/output_key arrays.
    # Empty: a directory under $FNO_DATA_DIR (default ~/.cache/fno) named after `generate`.
    data.dir = ""
    data.input_key = "a"
    data.output_key = "u"
    # Training split: the first num_train samples; test split: the last num_test samples.
    data.num_train = 1000
    data.num_test = 200
    # Training resolution s: the file's grid subsampled by an integer factor ([:, ::sub]).
    data.resolution = 1024
    # Extra test resolutions for zero-shot super-resolution (each must divide the file's).
    data.eval_resolutions = (2048, 4096, 8192)
    # Settings for generating the dataset when data.dir does not exist yet.
    data.generate = gen = ml_collections.ConfigDict()
    gen.num_samples = 2048
    gen.resolution = 8192
    gen.seed = 0
    gen.nu = 0.1
    gen.t_final = 1.0

    config.model = model = ml_collections.ConfigDict()
    model.width = 64
    model.modes = 16
    model.num_layers = 4
    model.activation = "gelu"
    model.projection_width = 128
    # Spectral convolution: "fft", "dft" (truncated-DFT matmuls) or "auto" (by resolution).
    model.spectral_impl = "auto"
    # Compute dtype of activations and matmuls: "float32" or "bfloat16" (mixed precision:
    # parameters, Adam state and the loss stay float32). bfloat16 is for GPUs and TPUs; on
    # CPU it is slower than float32 (README, Performance).
    model.dtype = "float32"
    return config
