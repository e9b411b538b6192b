"""Research at scale: many recordings through the pipeline on Dask, parameter sweeps, tidy tables,
night plots, and the Python API behind `import crampwatch`."""
