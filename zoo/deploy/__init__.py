"""Out of Keras: export to deployment formats (zoo.export), checked in their own runtimes."""
