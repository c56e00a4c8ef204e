"""PHIL scopes of the networks: one scope per architecture, one parameter per constructor argument.

Included by ml_phasing.train as ``model { include scope ml_phasing.phil.model.phil_scope }``.
"""

import libtbx.phil

phil_str = """
architecture = *auto patterson_unet unet3d mlp fft_unet xrd_transformer
  .type = choice
  .help = "Network. auto: patterson_unet for patterson_to_density, unet3d for \\
           intensity_to_density, fft_unet for extend_resolution."
patterson_unet {
  stem_channels = 25
    .type = int(value_min=1)
    .help = "Channels of the full-resolution convolutions (Pan et al. 25)."
  channels = 30
    .type = int(value_min=1)
    .help = "Channels of the residual trunk at half resolution (Pan et al. 30)."
  n_blocks = 8
    .type = int(value_min=0)
    .help = "Residual squeeze-excitation blocks (Pan et al. 8)."
  kernel_size = 7
    .type = int(value_min=1)
    .help = "Kernel of the encoder and trunk convolutions (Pan et al. 7)."
  decoder_kernel_size = 5
    .type = int(value_min=1)
    .help = "Kernel of the decoder convolutions (Pan et al. 5)."
  se_reduction = 2
    .type = int(value_min=1)
    .help = "Squeeze-excitation reduction factor."
  norm = *batch instance none
    .type = choice
    .help = "Normalisation layers."
  out_activation = *tanh none
    .type = choice
    .help = "Output activation (tanh for maps scaled to [-1, 1])."
}
unet3d {
  depth = 2
    .type = int(value_min=0)
    .help = "Down-sampling steps; grids are padded to multiples of 2**depth."
  base_channels = 16
    .type = int(value_min=1)
    .help = "Channels of the first level (doubled per level)."
  norm = *batch instance none
    .type = choice
    .help = "Normalisation layers."
  padding_mode = zeros *auto circular
    .type = choice
    .help = "Convolution padding; auto is circular for periodic maps."
  out_activation = *auto none tanh relu softplus
    .type = choice
    .help = "Output activation; auto: tanh for maps in [-1, 1], softplus for amplitudes."
}
mlp {
  hidden = 512 512
    .type = ints(value_min=1)
    .help = "Hidden layer sizes (scikit-learn's hidden_layer_sizes)."
  dropout = 0.0
    .type = float(value_min=0, value_max=1)
    .help = "Dropout after each hidden layer."
}
fft_unet {
  depth = 2
    .type = int(value_min=0)
    .help = "Down-sampling steps."
  base_channels = 16
    .type = int(value_min=1)
    .help = "Channels of the first level (thesis 64)."
  fft_layers = 2
    .type = int(value_min=1)
    .help = "1x1 convolutions in each Fourier branch (thesis 2)."
  norm = batch *instance none
    .type = choice
    .help = "Normalisation layers (thesis: instance)."
}
xrd_transformer {
  dim = 128
    .type = int(value_min=4)
    .help = "Token width (thesis 128)."
  depth = 5
    .type = int(value_min=1)
    .help = "Encoder layers (thesis 5)."
  heads = 4
    .type = int(value_min=1)
    .help = "Attention heads (thesis 4)."
  mlp_ratio = 4.0
    .type = float(value_min=0.5)
    .help = "Feed-forward width relative to dim."
  dropout = 0.1
    .type = float(value_min=0, value_max=1)
    .help = "Dropout."
}
"""

phil_scope = libtbx.phil.parse(phil_str)
