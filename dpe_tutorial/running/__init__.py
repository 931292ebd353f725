"""Running experiments: a config, the round loop, the results folder, resuming, the data.

Built on :mod:`dpe_tutorial.method` and nothing above it. A run's
:class:`~dpe_tutorial.running.config.ExperimentConfig` travels down from
:mod:`~dpe_tutorial.running.experiment` to the modules that need its values;
the results folder's file names are spelled in
:mod:`~dpe_tutorial.running.results_folder` alone.
"""
