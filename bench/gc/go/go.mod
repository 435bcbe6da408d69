module gcbench

go 1.19
