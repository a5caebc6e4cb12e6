"""The project without Qt: its store on disk, kept generations, the writer lock, the editing session, review order,
and the workflows both front ends run."""
