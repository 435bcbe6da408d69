module gcbench

go 1.27
