# Burda et al. (2016)'s d = 50 protocol as `latent-atlas train` flags, shared by
# scripts/long-run.sh and scripts/ablations.sh (sourced, not run): dynamically binarised MNIST,
# all 60,000 training images, two tanh layers of 200 units around 50 latent dimensions, batches
# of 20, Adam (epsilon 1e-4) on the staged schedule, Glorot's initialisation and the decoder's
# output bias at the data's mean. The objective (`--iw-samples`) is the caller's.
# shellcheck disable=SC2034 # used by the scripts that source it
burda_protocol=(--model vae --dataset mnist --binarize --latent-dim 50 --hidden 200,200
  --activation tanh --batch-size 20 --lr 0.001 --lr-schedule burda --adam-epsilon 1e-4
  --glorot-init --mean-output-bias --validation 0 --nll-samples 0 --score-samples 0)
