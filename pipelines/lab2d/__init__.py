"""The 2D lab: diffusion on point clouds in the plane, small enough to train on a CPU in seconds.

``datasets`` (the distributions, standardised), ``experiment`` (what is drawn from which seed), ``model`` (the
ε-predicting MLP), ``training`` (L_simple, step by step), ``sampling`` (DDPM, DDIM and the probability-flow ODE, every
step recorded), ``exact_score`` (a Gaussian mixture's density and score at any t, in closed form), ``score_field``
(learned and exact scores on a grid, and their error), ``density`` (q(x_t) on a grid), ``metrics`` (MMD and sliced
Wasserstein), ``quality`` (the table of both, per sampler: ``python -m pipelines.lab2d.quality``) and ``cpu`` (the
lab's work runs on one thread).
"""
