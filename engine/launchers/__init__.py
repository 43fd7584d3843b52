"""How a worker starts a run's process: on its own machine (`local`: the warm fork server or a fresh interpreter)
or as a Slurm job (`slurm`, through submitit)."""
