"""ROS-free input and output: bags, frame sources and image <-> numpy, for nodes and evaluator."""
