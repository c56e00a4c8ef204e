"""PHIL parameters of ml_phasing.interpret."""

phil_str = """
include scope ml_phasing.phil.common.phil_scope
input {
  include scope ml_phasing.phil.common.reflection_input_phil_scope
}
symmetry {
  include scope ml_phasing.phil.common.symmetry_phil_scope
}
model = None
  .type = path
  .help = "Model file from ml_phasing.train (task patterson_to_density, intensity_to_density \\
           or extend_resolution), or a shipped model's name: dialanine_10A (the default), \\
           dipeptide_12A, extend_1.2_to_1.0A, extend_1.5_to_0.8A, scripps_unet or \\
           scripps_unet_xray_cartesian. Convolutional models (patterson_unet, \\
           unet3d, fft_unet) give Grad-CAM maps; the transformer (xrd_transformer) gives \\
           attention maps."
composition = None
  .type = str
  .help = "Intensity-to-density (Scripps) models: the contents of the asymmetric unit, e.g. \
           'C2 O1 Cl1', which set the absolute scale and F000 of the network's |F|^2 input as \
           in ml_phasing.patterson_to_density (default: estimated from the cell)."
layer = None
  .type = str
  .help = "The layer explained, by its module name. Grad-CAM: default the last block before \\
           the decoder (trunk.<last> for patterson_unet, the bottleneck body.down.<depth> for \\
           unet3d and fft_unet). Attention: encoder.layers.<i>, default the last. A name that \\
           is not a layer of the model is refused with the list of valid names."
grad_cam {
  target = *auto whole peaks highest_peak
    .type = choice
    .help = "What the Grad-CAM map explains: the network's output summed over all of it \\
             (whole), over its peaks (values >= threshold x the maximum) or over the \\
             neighbourhood of its highest point (highest_peak: peak_radius around the highest \\
             density point; the single strongest predicted reflection for extension). \\
             Extension models count only the reflections they predict (not the measured ones \\
             they pass through). auto: peaks for Patterson-to-density (the predicted atoms), \\
             whole for extension (all predicted amplitudes)."
  weighting = *auto channel elementwise
    .type = choice
    .help = "channel: Grad-CAM (Selvaraju et al. 2017), each channel of the layer weighted by \\
             its mean gradient. elementwise: HiResCAM (Draelos and Carin 2020), each activation \\
             weighted by its own gradient, for when Grad-CAM's averaging cancels (the map is \\
             then zero). auto: channel for Patterson-to-density models, elementwise for \\
             extension models (their target sums thousands of reflections at different places \\
             in the box: on the shipped models the channel-averaged map is zero)."
  threshold = 0.5
    .type = float(value_min=0, value_max=1)
    .help = "target=peaks: output values at least this fraction of the maximum count."
  peak_radius = 1.0
    .type = float(value_min=0)
    .help = "target=highest_peak on a density: radius (A) of the sphere around the highest \\
             point that is summed."
}
d_min_target = None
  .type = float(value_min=0.3)
  .help = "Extension models: the resolution (A) the prediction is explained to; default the \\
           model's target."
output {
  write_maps = True
    .type = bool
    .help = "Patterson-to-density models: also write the network's input (<prefix>_patterson.ccp4) \\
             and output (<prefix>_density.ccp4) on the same grid as the Grad-CAM map, to open \\
             beside it."
}
"""
