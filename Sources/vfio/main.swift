print("vfio")
