"""Small CLI subcommands; larger jobs (demo, ber, train) live beside the code they drive."""
