"""plinth.serving: the Open Inference Protocol v2 model server that ModelDeployment runs by default."""
