"""Training demos behind the `tinygrad-seq` command line."""
