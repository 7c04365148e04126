"""Training the default edge and cloud models on generated driving scenes."""
