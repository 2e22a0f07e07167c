"""The bottom Keras layer, which every other part of the zoo may use: backend
policy (jit compilation, devices, compiled functions), ZooModel's predict,
and the quiet import of Keras, TensorFlow and keras_hub."""
