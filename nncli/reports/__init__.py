"""Reports about a trained model, as plain data the command line prints as text or JSON: what a model file
holds (``model_info``), how well a model does on a table (``evaluation``), and backpropagation for one
example in the lecture's notation (``trace``)."""
